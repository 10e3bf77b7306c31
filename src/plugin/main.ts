#!/usr/bin/env node
// `kubectl vmove …` (bin/kubectl-vmove runs this once `make build` ran): parse, connect, run,
// and turn every failure into one line on stderr and its exit code (2: bad input, 1: the rest).
import { logger } from '../log';
import { parsePluginArgs, USAGE } from './args';
import { runCommand } from './commands';
import { connect } from './connection';
import { EXIT, explain } from './errors';

async function main(argv: string[]): Promise<number> {
  // The view owns stdout: the informers' logs stay silent unless asked for.
  if (!process.env.VMOVE_LOG_LEVEL) logger.level = 'silent';
  const parsed = parsePluginArgs(argv);
  if (!parsed.ok) {
    process.stderr.write(`kubectl vmove: ${parsed.error}\n`);
    return EXIT.badInput;
  }
  if (parsed.command.kind === 'help') {
    process.stdout.write(USAGE);
    return EXIT.ok;
  }
  const aborts = new AbortController();
  process.once('SIGINT', () => aborts.abort());
  process.once('SIGTERM', () => aborts.abort());
  const conn = await connect(parsed.target);
  const out = process.stdout;
  try {
    return await runCommand(parsed.command, conn, parsed.target.allNamespaces, {
      out: {
        write: (t) => void out.write(t),
        isTTY: !!out.isTTY,
        columns: () => out.columns || 200,
        onResize: (fn) => {
          out.on('resize', fn);
          return () => void out.off('resize', fn);
        },
      },
      signal: aborts.signal,
    });
  } finally {
    conn.api.close();
  }
}

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (err: unknown) => {
    const { line, code } = explain(err);
    process.stderr.write(`kubectl vmove: ${line}\n`);
    process.exitCode = code;
  },
);
