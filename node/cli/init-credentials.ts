// What `quorate init` writes so that a cluster across hosts has an authenticated, encrypted
// JSON-RPC surface (node/rpc/security.ts), and the decision of when it is needed.
//
// When any node's host is not a loopback address (node/rpc/security-config.ts, isLoopbackHost):
//   DIR/credentials/            0700, the operator's: never copied to a node's host
//     ca.crt, ca.key            the cluster's own CA (ECDSA P-256, 10 years); ca.key 0600
//     rpc-tokens.txt            0600: the bearer tokens themselves, one per line ("operator", "reader")
//     client.crt, client.key    an operator client certificate from the CA, for listeners that set
//                               rpc.tls.clientCaFile (not set by default)
//   DIR/node-i/tls/rpc.crt, rpc.key (0600), ca.crt   the node's server certificate (SAN: its host,
//                               localhost, 127.0.0.1) and the CA, for clients on that host
//   DIR/node-i/rpc-tokens.json  only the SHA-256 of each token, with its scopes (node/rpc/auth.ts)
// and each node's config gets rpc.tls and rpc.auth.tokensFile, its rpcUrl https://.
// An all-loopback cluster (the local `npm start` one) gets none of this and needs no credentials.
//
// Certificates come from @peculiar/x509 over Node's WebCrypto: keys are made by Node's own crypto,
// the library only encodes X.509. It is loaded on first use, so other commands do not pay for it.

import { webcrypto } from 'node:crypto';
import { chmod, mkdir, open, readFile, writeFile } from 'node:fs/promises';
import { isIP } from 'node:net';
import { join } from 'node:path';
import { generateToken, tokensFileJson, type RpcScope } from '../rpc/auth.js';
import { isLoopbackHost } from '../rpc/security-config.js';
import { SystemClock } from '../clock.js';

/** The real clock (node/clock.ts): this module has no injected one. */
const clock = new SystemClock();

/** Validity of the cluster CA and of the certificates it issues. */
export const CA_VALIDITY_DAYS = 3650;
export const LEAF_VALIDITY_DAYS = 825;

/** The tokens `init` issues: the operator may do everything, the reader only read and submit client-signed transactions. */
export const INIT_TOKENS: readonly { name: string; scopes: readonly RpcScope[] }[] = [
  { name: 'operator', scopes: ['eth', 'net', 'quorate', 'raft', 'admin'] },
  { name: 'reader', scopes: ['eth', 'net', 'quorate', 'raft'] },
];

/** Paths inside the cluster folder (relative to it, or to a node folder for NODE_*). */
export const CREDENTIAL_FILES = {
  dir: 'credentials',
  caCert: 'credentials/ca.crt',
  caKey: 'credentials/ca.key',
  tokens: 'credentials/rpc-tokens.txt',
  clientCert: 'credentials/client.crt',
  clientKey: 'credentials/client.key',
  nodeCert: 'tls/rpc.crt',
  nodeKey: 'tls/rpc.key',
  nodeCa: 'tls/ca.crt',
  nodeTokens: 'rpc-tokens.json',
} as const;

/** True when a cluster on these hosts needs RPC credentials (some host is reachable from the network). */
export function rpcCredentialsNeeded(hosts: readonly string[]): boolean {
  return hosts.some((h) => !isLoopbackHost(h));
}

export interface WrittenCredentials {
  /** The fields to add to node `nodeId`'s config `rpc` object. */
  rpcConfigFor(nodeId: string): Record<string, unknown>;
}

const ALGORITHM = { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' } as const;

type X509 = typeof import('@peculiar/x509');

async function loadX509(): Promise<X509> {
  // tsyringe, under @peculiar/x509, needs the Reflect metadata API loaded first.
  await import('reflect-metadata');
  const x509 = await import('@peculiar/x509');
  x509.cryptoProvider.set(webcrypto as unknown as Crypto);
  return x509;
}

async function writeSecret(path: string, text: string): Promise<void> {
  const handle = await open(path, 'wx', 0o600);
  try {
    await handle.writeFile(text, 'utf8');
    await handle.sync();
  } finally {
    await handle.close();
  }
}

function pemKey(pkcs8: ArrayBuffer): string {
  const b64 = Buffer.from(pkcs8).toString('base64');
  return `-----BEGIN PRIVATE KEY-----\n${b64.replace(/(.{64})/g, '$1\n').replace(/\n$/, '')}\n-----END PRIVATE KEY-----\n`;
}

function serial(): string {
  // 16 random bytes, top bit clear so the DER integer stays positive.
  const b = webcrypto.getRandomValues(new Uint8Array(16));
  b[0] &= 0x7f;
  return Buffer.from(b).toString('hex');
}

export interface Ca {
  readonly certPem: string;
  readonly keyPem: string;
  /** Issues a certificate. `hosts` go in the SAN (IPs as IP entries, names as DNS entries). */
  issue(o: { commonName: string; hosts?: readonly string[]; usage: 'server' | 'client' }): Promise<{
    certPem: string;
    keyPem: string;
  }>;
}

/** A new CA (tests make their own, "another CA", with it too). */
export async function createCa(commonName: string): Promise<Ca> {
  const x509 = await loadX509();
  const now = clock.wallMs();
  const caKeys = (await webcrypto.subtle.generateKey(ALGORITHM, true, ['sign', 'verify'])) as CryptoKeyPair;
  const caCert = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: serial(),
    name: `CN=${commonName}`,
    notBefore: new Date(now - 60_000),
    notAfter: new Date(now + CA_VALIDITY_DAYS * 86_400_000),
    signingAlgorithm: ALGORITHM,
    keys: caKeys,
    extensions: [
      new x509.BasicConstraintsExtension(true, 0, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign, true),
      await x509.SubjectKeyIdentifierExtension.create(caKeys.publicKey as CryptoKey),
    ],
  });
  return caFrom(x509, caCert, caKeys.privateKey);
}

/** The CA `init` wrote (credentials/ca.crt and ca.key), to issue more certificates (add-node). */
export async function loadCa(certPem: string, keyPem: string): Promise<Ca> {
  const x509 = await loadX509();
  const der = Buffer.from(keyPem.replace(/-----[A-Z ]+-----/g, '').replace(/\s+/g, ''), 'base64');
  const key = await webcrypto.subtle.importKey('pkcs8', der, ALGORITHM, true, ['sign']);
  return caFrom(x509, new x509.X509Certificate(certPem), key);
}

async function caFrom(x509: X509, caCert: InstanceType<X509['X509Certificate']>, caPrivateKey: CryptoKey): Promise<Ca> {
  const now = clock.wallMs();
  return {
    certPem: caCert.toString('pem') + '\n',
    keyPem: pemKey(await webcrypto.subtle.exportKey('pkcs8', caPrivateKey)),
    async issue({ commonName: cn, hosts = [], usage }) {
      const keys = await webcrypto.subtle.generateKey(ALGORITHM, true, ['sign', 'verify']);
      const san = hosts.map((h) =>
        isIP(h.replace(/^\[|\]$/g, ''))
          ? { type: 'ip' as const, value: h.replace(/^\[|\]$/g, '') }
          : { type: 'dns' as const, value: h },
      );
      const cert = await x509.X509CertificateGenerator.create({
        serialNumber: serial(),
        subject: `CN=${cn}`,
        issuer: caCert.subject,
        notBefore: new Date(now - 60_000),
        notAfter: new Date(now + LEAF_VALIDITY_DAYS * 86_400_000),
        signingAlgorithm: ALGORITHM,
        publicKey: keys.publicKey as CryptoKey,
        signingKey: caPrivateKey,
        extensions: [
          new x509.BasicConstraintsExtension(false, undefined, true),
          new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature, true),
          new x509.ExtendedKeyUsageExtension(
            [usage === 'server' ? x509.ExtendedKeyUsage.serverAuth : x509.ExtendedKeyUsage.clientAuth],
            false,
          ),
          ...(san.length > 0 ? [new x509.SubjectAlternativeNameExtension(san, false)] : []),
          await x509.AuthorityKeyIdentifierExtension.create(caCert, false),
        ],
      });
      return {
        certPem: cert.toString('pem') + '\n',
        keyPem: pemKey(await webcrypto.subtle.exportKey('pkcs8', keys.privateKey as CryptoKey)),
      };
    },
  };
}

/**
 * Writes the CA, the tokens, and each node's certificate and token hashes under `root` (the
 * cluster folder being built; every node folder exists already).
 */
export async function writeRpcCredentials(
  root: string,
  nodes: readonly { readonly nodeId: string; readonly host: string }[],
  options: { readonly tls?: boolean } = {},
): Promise<WrittenCredentials> {
  const dir = join(root, CREDENTIAL_FILES.dir);
  await mkdir(dir, { mode: 0o700 });
  await chmod(dir, 0o700); // mkdir's mode is filtered by the umask
  const ca = await createCa('quorate cluster CA');
  await writeFile(join(root, CREDENTIAL_FILES.caCert), ca.certPem, { flag: 'wx' });
  await writeSecret(join(root, CREDENTIAL_FILES.caKey), ca.keyPem);

  const tokens = INIT_TOKENS.map((t) => ({ ...t, ...generateToken() }));
  await writeSecret(
    join(root, CREDENTIAL_FILES.tokens),
    '# quorate JSON-RPC bearer tokens: NAME SCOPES TOKEN. Nodes keep only their SHA-256 (node-i/rpc-tokens.json).\n' +
      '# Use: curl -H "Authorization: Bearer TOKEN" ..., or QUORATE_RPC_TOKEN=TOKEN quorate status ...\n' +
      tokens.map((t) => `${t.name} ${t.scopes.join(',')} ${t.token}`).join('\n') +
      '\n',
  );
  const client = await ca.issue({ commonName: 'quorate operator', usage: 'client' });
  await writeFile(join(root, CREDENTIAL_FILES.clientCert), client.certPem, { flag: 'wx' });
  await writeSecret(join(root, CREDENTIAL_FILES.clientKey), client.keyPem);

  const hashes = JSON.stringify(tokensFileJson(tokens), null, 2) + '\n';
  for (const n of nodes) await writeNodeCredentials(ca, join(root, n.nodeId), n, hashes);
  return { rpcConfigFor: () => rpcConfigFields(options.tls !== false) };
}

/** What each node's config `rpc` object gets (paths relative to the node folder). */
function rpcConfigFields(tls: boolean): Record<string, unknown> {
  const auth = { tokensFile: CREDENTIAL_FILES.nodeTokens };
  return tls ? { tls: { certFile: CREDENTIAL_FILES.nodeCert, keyFile: CREDENTIAL_FILES.nodeKey }, auth } : { auth };
}

async function writeNodeCredentials(
  ca: Ca,
  nodeDir: string,
  n: { readonly nodeId: string; readonly host: string },
  tokenHashesJson: string,
): Promise<void> {
  await mkdir(join(nodeDir, 'tls'), { mode: 0o700 });
  const leaf = await ca.issue({
    commonName: n.nodeId,
    hosts: [...new Set([n.host, 'localhost', '127.0.0.1'])],
    usage: 'server',
  });
  await writeFile(join(nodeDir, CREDENTIAL_FILES.nodeCert), leaf.certPem, { flag: 'wx' });
  await writeSecret(join(nodeDir, CREDENTIAL_FILES.nodeKey), leaf.keyPem);
  await writeFile(join(nodeDir, CREDENTIAL_FILES.nodeCa), ca.certPem, { flag: 'wx' });
  await writeSecret(join(nodeDir, CREDENTIAL_FILES.nodeTokens), tokenHashesJson);
}

/**
 * For `quorate add-node` in a cluster folder that has credentials/: issues the new node's
 * certificate from the cluster CA and gives it the same token hashes as `fromNodeDir` (an existing
 * node's folder). Returns the fields for its config's `rpc` object, or undefined when the folder
 * has no credentials (an all-loopback cluster).
 */
export async function credentialsForNewNode(
  clusterDir: string,
  fromNodeDir: string,
  nodeDir: string,
  node: { readonly nodeId: string; readonly host: string },
  options: { readonly tls?: boolean } = {},
): Promise<Record<string, unknown> | undefined> {
  let caCert: string;
  let caKey: string;
  try {
    caCert = await readFile(join(clusterDir, CREDENTIAL_FILES.caCert), 'utf8');
    caKey = await readFile(join(clusterDir, CREDENTIAL_FILES.caKey), 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw err;
  }
  const hashes = await readFile(join(fromNodeDir, CREDENTIAL_FILES.nodeTokens), 'utf8');
  await writeNodeCredentials(await loadCa(caCert, caKey), nodeDir, node, hashes);
  return rpcConfigFields(options.tls !== false);
}

/** What `init` prints about the credentials of cluster folder `dir`. */
export function credentialsNote(dir: string, rpcUrl: string): string {
  return (
    `\nJSON-RPC listens on non-loopback addresses, so it serves TLS and requires a bearer token.\n` +
    `  tokens (keep them secret; nodes store only hashes): ${join(dir, CREDENTIAL_FILES.tokens)}\n` +
    `  cluster CA: ${join(dir, CREDENTIAL_FILES.caCert)}   (copy node-i/ to its host; keep credentials/ off the nodes)\n` +
    `  curl --cacert ${join(dir, CREDENTIAL_FILES.caCert)} -H "Authorization: Bearer $TOKEN" -H 'content-type: application/json' \\\n` +
    `       -d '{"jsonrpc":"2.0","id":1,"method":"raft_status"}' ${rpcUrl}\n` +
    `  quorate status --rpc ${rpcUrl} --token $TOKEN --ca-file ${join(dir, CREDENTIAL_FILES.caCert)}\n`
  );
}
