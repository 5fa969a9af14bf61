// Errors of the enclave. Two kinds, kept apart (docs/design.md §6):
//  - EnclaveError: an expected operating condition the caller can act on (a wrong password, a
//    tampered payload, a key this enclave does not hold). It carries a stable `code`.
//  - EnclaveInvariantError: a programmer error. Never caught here; the process should crash
//    with the offending values in the message.
//
// Messages never contain key material or plaintext: they end up in logs.

export enum EnclaveErrorCode {
  /** The key file's password is wrong (the stored password check did not match). */
  WrongPassword = 'ENCLAVE_WRONG_PASSWORD',
  /** The key file is not valid JSON, has an unknown version, missing or malformed fields, or fails authentication with the right password. */
  CorruptKeyFile = 'ENCLAVE_CORRUPT_KEY_FILE',
  /** A key file is encrypted and no password was given. */
  MissingPassword = 'ENCLAVE_MISSING_PASSWORD',
  /** The key file cannot be read (missing, permissions): the IO error is the cause. */
  KeyFileUnreadable = 'ENCLAVE_KEY_FILE_UNREADABLE',
  /** Refused to overwrite an existing key file. */
  KeyFileExists = 'ENCLAVE_KEY_FILE_EXISTS',
  /** A public key is not 32 bytes (or not valid base64 of 32 bytes). */
  InvalidKey = 'ENCLAVE_INVALID_KEY',
  /** The operation needs a private key this enclave does not hold. */
  UnknownKey = 'ENCLAVE_UNKNOWN_KEY',
  /** None of this enclave's keys (or not the requested one) has a box in the payload. */
  NotARecipient = 'ENCLAVE_NOT_A_RECIPIENT',
  /** Authentication failed: the ciphertext or a box was tampered with, or it was sealed for another key. */
  DecryptionFailed = 'ENCLAVE_DECRYPTION_FAILED',
  /** An encoded payload is truncated, oversized, of an unknown version, or inconsistent. */
  MalformedPayload = 'ENCLAVE_MALFORMED_PAYLOAD',
  /** A plaintext or recipient list exceeds its named limit (see enclave/limits.ts). */
  LimitExceeded = 'ENCLAVE_LIMIT_EXCEEDED',
}

export class EnclaveError extends Error {
  readonly code: EnclaveErrorCode;
  readonly meta: Record<string, unknown>;
  constructor(
    code: EnclaveErrorCode,
    message: string,
    meta: Record<string, unknown> = {},
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.name = 'EnclaveError';
    this.code = code;
    this.meta = meta;
  }
}

export class EnclaveInvariantError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'EnclaveInvariantError';
  }
}

/** Assertions stay on in production (TigerBeetle): a broken invariant crashes with its values. */
export function assert(condition: unknown, message: string | (() => string)): asserts condition {
  if (!condition) {
    throw new EnclaveInvariantError(typeof message === 'string' ? message : message());
  }
}

export function isEnclaveError(error: unknown, code?: EnclaveErrorCode): error is EnclaveError {
  return error instanceof EnclaveError && (code === undefined || error.code === code);
}
