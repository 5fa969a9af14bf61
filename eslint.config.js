// ESLint: the recommended rules of ESLint and typescript-eslint (syntax-only, so it runs in seconds
// on 2 cores). Formatting is prettier's job, not ESLint's. An unused parameter or binding that is
// there on purpose (an interface's signature, a destructured field left out) starts with `_`.
import js from '@eslint/js';
import globals from 'globals';
import tseslint from 'typescript-eslint';

export default tseslint.config(
  { ignores: ['node_modules/', 'dist/', '.quorate/', 'coverage/'] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    languageOptions: { globals: globals.node },
    rules: {
      '@typescript-eslint/no-unused-vars': [
        'error',
        { argsIgnorePattern: '^_', varsIgnorePattern: '^_', caughtErrorsIgnorePattern: '^_' },
      ],
    },
  },
  // The cluster page's own script runs in the browser, with uPlot loaded before it.
  { files: ['node/page/assets/**/*.js'], languageOptions: { globals: { ...globals.browser, uPlot: 'readonly' } } },
);
