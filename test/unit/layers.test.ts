// The layers of src/ point one way: the protocol and fs floors at the bottom, the API types apart,
// drivers under the agent, machines under the controller, and no driver inside another. This
// reads every import (and export … from, require, import()) of src/ and names each one that
// points upward.
import { readFileSync, readdirSync } from 'node:fs';
import { join, posix, relative, resolve } from 'node:path';
import ts from 'typescript';

const ROOT = resolve(__dirname, '..', '..');

interface Layer {
  /** The folder under src/ the rule speaks of (its subfolders included). */
  folder: string;
  /** When set, the only src/ folders its files may import; npm packages only when `packages`. node: modules always. */
  may?: string[];
  packages?: boolean;
  /** src/ folders its files must not import. */
  never?: string[];
}

const DRIVERS = readdirSync(join(ROOT, 'src', 'drivers'), { withFileTypes: true })
  .filter((e) => e.isDirectory() && e.name !== 'common')
  .map((e) => `src/drivers/${e.name}`);

const LAYERS: Layer[] = [
  { folder: 'src/protocol', may: ['src/api', 'src/protocol'], packages: false },
  { folder: 'src/fs', may: ['src/fs'], packages: false },
  { folder: 'src/api', may: ['src/api'], packages: true },
  { folder: 'src/drivers', never: ['src/agent', 'src/controller', 'src/kube', 'src/machines'] },
  // A driver borrows from src/drivers/common, never from another driver.
  ...DRIVERS.map((folder) => ({ folder, never: DRIVERS.filter((other) => other !== folder) })),
  { folder: 'src/machines', never: ['src/drivers', 'src/agent', 'src/kube', 'src/controller'] },
];

const within = (path: string, folder: string): boolean => path === folder || path.startsWith(`${folder}/`);

/** Every module `text` imports, as written. */
function importsOf(text: string): string[] {
  return ts.preProcessFile(text, true, true).importedFiles.map((f) => f.fileName);
}

/** One line per import of `file` (repo-relative, posix) that breaks a layer rule. */
function layerViolations(file: string, imports: string[], layers: Layer[] = LAYERS): string[] {
  const out: string[] = [];
  for (const spec of imports) {
    if (spec.startsWith('node:')) continue;
    const target = spec.startsWith('.') ? posix.normalize(posix.join(posix.dirname(file), spec)) : undefined;
    for (const layer of layers.filter((l) => within(file, l.folder))) {
      const says = `${file} imports '${spec}'${target ? ` (${target})` : ''}`;
      if (layer.may) {
        if (target === undefined ? !layer.packages : !layer.may.some((f) => within(target, f))) {
          out.push(`${says}: ${layer.folder} imports only node: modules${layer.packages ? ', packages' : ''} and ${layer.may.join(', ')}`);
        }
      }
      const bad = target === undefined ? undefined : layer.never?.find((f) => within(target, f));
      if (bad) out.push(`${says}: ${layer.folder} must not import ${bad}`);
    }
  }
  return out;
}

function sourceFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const path = join(dir, e.name);
    if (e.isDirectory()) return sourceFiles(path);
    return e.name.endsWith('.ts') ? [path] : [];
  });
}

const SOURCES = sourceFiles(join(ROOT, 'src')).map((abs) => relative(ROOT, abs).split('\\').join('/'));

test('no layer of src/ imports upward', () => {
  const violations = SOURCES.flatMap((file) => layerViolations(file, importsOf(readFileSync(join(ROOT, file), 'utf8'))));
  expect(violations).toEqual([]);
});

test('every layer the rules speak of exists, so a renamed folder cannot pass unchecked', () => {
  for (const layer of LAYERS) expect(SOURCES.filter((f) => within(f, layer.folder)).length).toBeGreaterThan(0);
  expect(DRIVERS).toEqual(expect.arrayContaining(['src/drivers/libvirt', 'src/drivers/qemu', 'src/drivers/sim']));
});

test('an upward import is named with the file, the import as written, where it points and the rule', () => {
  const driverImport = "import type { OperationKind } from '../../agent/protocol';\nimport { x } from '../common/disks';";
  expect(layerViolations('src/drivers/sim/guest.ts', importsOf(driverImport))).toEqual([
    "src/drivers/sim/guest.ts imports '../../agent/protocol' (src/agent/protocol): src/drivers must not import src/agent",
  ]);
  expect(layerViolations('src/drivers/libvirt/x.ts', importsOf("export { diskPath } from '../qemu/paths';"))).toEqual([
    "src/drivers/libvirt/x.ts imports '../qemu/paths' (src/drivers/qemu/paths): src/drivers/libvirt must not import src/drivers/qemu",
  ]);
  expect(layerViolations('src/protocol/vm.ts', importsOf("import type { V1Lease } from '@kubernetes/client-node';\nimport type { StorageKind } from '../api/types';"))).toEqual([
    "src/protocol/vm.ts imports '@kubernetes/client-node': src/protocol imports only node: modules and src/api, src/protocol",
  ]);
  expect(layerViolations('src/machines/ladder.ts', importsOf("const d = require('../drivers/driver');"))).toEqual([
    "src/machines/ladder.ts imports '../drivers/driver' (src/drivers/driver): src/machines must not import src/drivers",
  ]);
  expect(layerViolations('src/api/types.ts', importsOf("import { log } from '../log';\nimport { parse } from 'yaml';"))).toEqual([
    "src/api/types.ts imports '../log' (src/log): src/api imports only node: modules, packages and src/api",
  ]);
});
