// The agent's certificate material: a certificate naming its node, its key, and the vmove CA.
// The same files serve the HTTPS API and the hypervisor's migration streams, which want them in
// QEMU's tls-creds-x509 layout; a folder given with --tls-dir has it already, separate files get
// one made of symlinks in the state folder (symlinks, so a rotated Secret is seen through them).
import { existsSync, mkdirSync, readFileSync, readlinkSync, rmSync, statSync, symlinkSync } from 'node:fs';
import { join, resolve } from 'node:path';

export interface AgentTlsFiles {
  certFile: string;
  keyFile: string;
  caFile: string;
}

/** The files of a folder in QEMU's layout (as src/cluster/agentPki.ts writes them). */
export function tlsFilesOfDir(dir: string): AgentTlsFiles {
  return { certFile: join(dir, 'server-cert.pem'), keyFile: join(dir, 'server-key.pem'), caFile: join(dir, 'ca-cert.pem') };
}

export interface TlsMaterial {
  cert: string;
  key: string;
  ca: string;
}

export function readTlsMaterial(f: AgentTlsFiles): TlsMaterial {
  return { cert: readFileSync(f.certFile, 'utf8'), key: readFileSync(f.keyFile, 'utf8'), ca: readFileSync(f.caFile, 'utf8') };
}

/** A folder in QEMU's layout holding (or pointing at) these files. */
export function migrationTlsDir(f: AgentTlsFiles, stateDir: string): string {
  const dir = resolve(f.certFile, '..');
  const inLayout = tlsFilesOfDir(dir);
  if (resolve(inLayout.keyFile) === resolve(f.keyFile) && resolve(inLayout.caFile) === resolve(f.caFile)) {
    if (existsSync(join(dir, 'client-cert.pem')) && existsSync(join(dir, 'client-key.pem'))) return dir;
  }
  const out = join(stateDir, 'migration-tls');
  mkdirSync(out, { recursive: true, mode: 0o700 });
  const links: Record<string, string> = {
    'ca-cert.pem': f.caFile,
    'server-cert.pem': f.certFile,
    'server-key.pem': f.keyFile,
    'client-cert.pem': f.certFile,
    'client-key.pem': f.keyFile,
  };
  for (const [name, target] of Object.entries(links)) {
    const link = join(out, name);
    const want = resolve(target);
    let have: string | undefined;
    try {
      have = readlinkSync(link);
    } catch {
      have = undefined;
    }
    if (have === want) continue;
    rmSync(link, { force: true });
    symlinkSync(want, link);
  }
  return out;
}

/**
 * Calls `onChange` with the new material when any of the files changed (a rotated Secret, a
 * re-issued certificate), looking every `intervalMs`. Returns the stop function.
 */
export function watchTlsFiles(f: AgentTlsFiles, onChange: (m: TlsMaterial) => void, intervalMs = 30_000): () => void {
  const stamp = (): string => [f.certFile, f.keyFile, f.caFile].map((p) => { try { const s = statSync(p); return `${s.ino}:${s.mtimeMs}:${s.size}`; } catch { return '-'; } }).join('|');
  let last = stamp();
  const timer = setInterval(() => {
    const now = stamp();
    if (now === last) return;
    try {
      const m = readTlsMaterial(f);
      last = now;
      onChange(m);
    } catch {
      // Half-written (a Secret update swaps files one by one): look again next time.
    }
  }, intervalMs);
  timer.unref();
  return () => clearInterval(timer);
}
