// Audience-bound tokens: a projected token file is read again when the kubelet swaps it, and a
// TokenRequest token is replaced once 80% of its life has passed.
import { mkdtemp, rename, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseServiceAccount, refreshAt, tokenFromFile } from '../../../src/kube/audienceToken';

test('a token file is re-read when it is replaced (the kubelet swaps it atomically)', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'vmove-token-'));
  try {
    const path = join(dir, 'token');
    await writeFile(path, 'first\n');
    const token = tokenFromFile(path);
    expect(await token()).toBe('first');
    await writeFile(join(dir, 'token.new'), 'second\n');
    await rename(join(dir, 'token.new'), path);
    expect(await token()).toBe('second');
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('a requested token is renewed after 80% of its life', () => {
  expect(refreshAt(0, 3_600_000)).toBe(2_880_000);
  expect(refreshAt(1_000, 601_000)).toBe(481_000);
});

test('ServiceAccounts are named NAMESPACE/NAME', () => {
  expect(parseServiceAccount('vmove-system/vmove-controller')).toEqual({ namespace: 'vmove-system', name: 'vmove-controller' });
  expect(() => parseServiceAccount('vmove-controller')).toThrow(/NAMESPACE\/NAME/);
});
