// The image runs vmove as the local fleet does: same Node flags (the young generation's cap that
// keeps the controller's memory near its live objects), same entry point.
import { readFileSync } from 'node:fs';
import * as path from 'node:path';
import { NODE_FLAGS } from '../../src/local/fleet';

test("the Dockerfile's ENTRYPOINT runs the CLI with the fleet's Node flags", () => {
  const dockerfile = readFileSync(path.resolve(__dirname, '../../Dockerfile'), 'utf8');
  const line = /^ENTRYPOINT (.+)$/m.exec(dockerfile);
  expect(line).not.toBeNull();
  expect(JSON.parse(line![1]!)).toEqual(['node', ...NODE_FLAGS, '/app/dist/cli/main.js']);
});
