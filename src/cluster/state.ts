// The files one control-plane instance keeps in its folder, and its persisted state
// (control-plane.json): how a later process — `vmove cluster status|down`, or the orphan
// sweep — finds the instance's processes again.
import { readFileSync, writeFileSync, renameSync } from 'node:fs';
import { join } from 'node:path';
import type { Tokens } from './credentials';
import type { IdentityName } from './identities';
import type { Lifetime } from './processes';

export interface InstancePaths {
  dir: string;
  stateFile: string;
  tokensFile: string;
  tokenAuthFile: string;
  serviceAccountKey: string;
  serviceAccountPub: string;
  certDir: string;
  caBundle: string;
  etcdData: string;
  etcdLog: string;
  etcdPid: string;
  apiserverLog: string;
  apiserverPid: string;
  kubeconfigs: Record<IdentityName, string>;
}

export function instancePaths(dir: string): InstancePaths {
  const certDir = join(dir, 'certs');
  return {
    dir,
    stateFile: join(dir, 'control-plane.json'),
    tokensFile: join(dir, 'tokens.json'),
    tokenAuthFile: join(dir, 'tokens.csv'),
    serviceAccountKey: join(dir, 'service-account.key'),
    serviceAccountPub: join(dir, 'service-account.pub'),
    certDir,
    // kube-apiserver writes its self-signed serving cert followed by the CA that signed it.
    caBundle: join(certDir, 'apiserver.crt'),
    etcdData: join(dir, 'etcd'),
    etcdLog: join(dir, 'etcd.log'),
    etcdPid: join(dir, 'etcd.pid'),
    apiserverLog: join(dir, 'kube-apiserver.log'),
    apiserverPid: join(dir, 'kube-apiserver.pid'),
    kubeconfigs: {
      admin: join(dir, 'admin.kubeconfig'),
      controller: join(dir, 'controller.kubeconfig'),
      agent: join(dir, 'agent.kubeconfig'),
    },
  };
}

export interface ProcessRecord {
  pid: number;
  executable: string;
}

export interface ControlPlaneState {
  lifetime: Lifetime;
  /** The process that started the instance; with lifetime 'parent' the instance dies with it. */
  ownerPid: number;
  startedAt: string;
  readyAt?: string;
  server?: string;
  etcdUrl?: string;
  etcd?: ProcessRecord;
  kubeApiserver?: ProcessRecord;
}

export function readState(paths: InstancePaths): ControlPlaneState | undefined {
  try {
    return JSON.parse(readFileSync(paths.stateFile, 'utf8')) as ControlPlaneState;
  } catch {
    return undefined;
  }
}

/** Written atomically: a concurrent reader sees the old or the new state, never half. */
export function writeState(paths: InstancePaths, state: ControlPlaneState): void {
  const tmp = `${paths.stateFile}.${process.pid}.tmp`;
  writeFileSync(tmp, JSON.stringify(state, null, 2) + '\n');
  renameSync(tmp, paths.stateFile);
}

export function readTokens(paths: InstancePaths): Tokens | undefined {
  try {
    return JSON.parse(readFileSync(paths.tokensFile, 'utf8')) as Tokens;
  } catch {
    return undefined;
  }
}
