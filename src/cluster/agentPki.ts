// The local control plane's vmove CA and the node certificates it issues, made with the real
// `openssl` (Node's crypto cannot issue certificates, and X.509 is not something to hand-roll).
// A node's folder has QEMU's tls-creds-x509 layout, so one folder serves the agent's HTTPS
// listener and its hypervisor's migration streams alike:
//   ca-cert.pem, server-cert.pem, server-key.pem, client-cert.pem, client-key.pem
// The server and client pair is one certificate (serverAuth + clientAuth) naming the node (DNS)
// and its addresses (IP), so a peer can check that it talks to the node it means to.
import { execFile } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync, copyFileSync } from 'node:fs';
import { isIP } from 'node:net';
import { join } from 'node:path';
import { promisify } from 'node:util';

const run = promisify(execFile);

export const CA_CERT = 'ca-cert.pem';
const CA_KEY = 'ca-key.pem';
export const NODE_TLS_FILES = {
  ca: CA_CERT,
  cert: 'server-cert.pem',
  key: 'server-key.pem',
  clientCert: 'client-cert.pem',
  clientKey: 'client-key.pem',
} as const;

const CA_DAYS = 3650;
const NODE_DAYS = 365;

/** Where a control plane keeps its agent CA: next to its kubeconfigs. */
export const agentPkiDir = (controlPlaneDir: string): string => join(controlPlaneDir, 'agent-pki');

async function openssl(args: string[], cwd: string): Promise<void> {
  try {
    await run('openssl', args, { cwd });
  } catch (err) {
    const e = err as { stderr?: string; message: string };
    throw new Error(`openssl ${args[0]} failed: ${(e.stderr ?? e.message).trim()}`);
  }
}

/** Creates the CA in `pkiDir` unless it is there; returns the CA certificate's path. */
export async function ensureAgentCa(pkiDir: string): Promise<string> {
  const cert = join(pkiDir, CA_CERT);
  if (existsSync(cert) && existsSync(join(pkiDir, CA_KEY))) return cert;
  mkdirSync(pkiDir, { recursive: true, mode: 0o700 });
  await openssl(
    [
      'req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes',
      '-keyout', CA_KEY, '-out', CA_CERT, '-days', String(CA_DAYS), '-subj', '/O=vmove/CN=vmove agent CA',
      '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign',
    ],
    pkiDir,
  );
  return cert;
}

/** subjectAltName for a node: its name, and each address as an IP (or DNS name when it is not one). */
export function nodeSubjectAltName(node: string, addresses: string[]): string {
  const names = [`DNS:${node}`, ...addresses.filter((a) => a !== node).map((a) => (isIP(a) ? `IP:${a}` : `DNS:${a}`))];
  return [...new Set(names)].join(',');
}

/**
 * Issues (or keeps, when it still names the same node and addresses) the certificate of `node`
 * into `outDir`, signed by the CA of `pkiDir`. Returns `outDir`.
 */
export async function issueNodeCert(pkiDir: string, node: string, addresses: string[], outDir: string): Promise<string> {
  await ensureAgentCa(pkiDir);
  const san = nodeSubjectAltName(node, addresses);
  const sanFile = join(outDir, 'san.txt');
  const all = Object.values(NODE_TLS_FILES).map((f) => join(outDir, f));
  const sameCa = (): boolean => readFileSync(join(outDir, NODE_TLS_FILES.ca), 'utf8') === readFileSync(join(pkiDir, CA_CERT), 'utf8');
  if (all.every((f) => existsSync(f)) && existsSync(sanFile) && readFileSync(sanFile, 'utf8') === san && sameCa()) return outDir;
  mkdirSync(outDir, { recursive: true, mode: 0o700 });
  const ext = join(outDir, 'ext.cnf');
  writeFileSync(
    ext,
    [
      'basicConstraints=critical,CA:FALSE',
      'keyUsage=critical,digitalSignature,keyEncipherment',
      'extendedKeyUsage=serverAuth,clientAuth',
      `subjectAltName=${san}`,
      '',
    ].join('\n'),
  );
  const csr = join(outDir, 'node.csr');
  await openssl(['req', '-new', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', join(outDir, NODE_TLS_FILES.key), '-out', csr, '-subj', `/O=vmove/CN=${node}`], pkiDir);
  await openssl(
    ['x509', '-req', '-in', csr, '-CA', CA_CERT, '-CAkey', CA_KEY, '-CAcreateserial', '-days', String(NODE_DAYS), '-extfile', ext, '-out', join(outDir, NODE_TLS_FILES.cert)],
    pkiDir,
  );
  rmSync(csr, { force: true });
  rmSync(ext, { force: true });
  copyFileSync(join(pkiDir, CA_CERT), join(outDir, NODE_TLS_FILES.ca));
  copyFileSync(join(outDir, NODE_TLS_FILES.cert), join(outDir, NODE_TLS_FILES.clientCert));
  copyFileSync(join(outDir, NODE_TLS_FILES.key), join(outDir, NODE_TLS_FILES.clientKey));
  writeFileSync(sanFile, san);
  return outDir;
}
