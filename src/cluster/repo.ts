// Paths inside the vmove checkout. This file is src/cluster/repo.ts or, compiled,
// dist/cluster/repo.js: the checkout is two levels up either way.
import { resolve } from 'node:path';

export const repoRoot = (): string => resolve(__dirname, '..', '..');
export const repoPath = (...parts: string[]): string => resolve(repoRoot(), ...parts);
