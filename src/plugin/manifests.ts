// The objects the plugin creates: exactly what a user's manifest with the same fields would be
// (no defaults filled in here: the API server's schema defaults them the same way). Pure.
import { API_VERSION, type HostEvacuation, type MoveRequest } from '../api/types';
import type { Command } from './args';

type MoveCommand = Extract<Command, { kind: 'move' }>;
/** An object to create under a name the API server generates from `generateName`. */
export type ToCreate<T extends { metadata: object }> = Omit<T, 'metadata'> & { metadata: T['metadata'] & { generateName: string } };

/** Generated names: "<vm>-" then five random characters from the API server. */
export function moveRequestFor(c: MoveCommand, namespace: string): ToCreate<MoveRequest> {
  const target = c.to ? { nodeName: c.to } : c.selector ? { nodeSelector: c.selector } : undefined;
  const resources = c.cpu !== undefined || c.memory !== undefined ? { ...(c.cpu !== undefined ? { cpu: c.cpu } : {}), ...(c.memory !== undefined ? { memory: c.memory } : {}) } : undefined;
  return {
    apiVersion: API_VERSION,
    kind: 'MoveRequest',
    metadata: { generateName: `${c.vm}-`, namespace },
    spec: { vmName: c.vm, ...(c.mode ? { mode: c.mode } : {}), ...(target ? { target } : {}), ...(resources ? { resources } : {}) },
  };
}

export function evacuationFor(node: string, dryRun: boolean): ToCreate<HostEvacuation> {
  return {
    apiVersion: API_VERSION,
    kind: 'HostEvacuation',
    // Label values hold at most 63 characters; the server adds five.
    metadata: { generateName: `${node.slice(0, 48)}-${dryRun ? 'plan-' : ''}` },
    spec: { nodeName: node, ...(dryRun ? { dryRun: true } : {}) },
  };
}
