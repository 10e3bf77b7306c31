#!/usr/bin/env node
// `vmove <command> …`: one program, one sub-command per role.
import { componentLogger } from '../log';

type Command = (argv: string[]) => Promise<number | void>;

/** Sub-commands load lazily so `vmove agent` does not pay for the controller's imports. */
const commands: Record<string, { summary: string; load: () => Promise<Command> }> = {
  cluster: { summary: 'local control plane: up | down | status | kubeconfig', load: async () => (await import('./cluster')).clusterCommand },
  controller: { summary: 'run the controller (leader-elected)', load: async () => (await import('./controller')).controllerCommand },
  agent: { summary: 'run a node agent: --node NAME --driver sim|qemu|libvirt', load: async () => (await import('./agent')).agentCommand },
  plan: { summary: 'plan evacuate NODE: show what an evacuation would do, moving nothing', load: async () => (await import('./plan')).planCommand },
  demo: { summary: 'run the demo: control plane, CRDs, controller, demo nodes and VMs', load: async () => (await import('./demo')).demoCommand },
};

function usage(): string {
  const lines = Object.entries(commands).map(([name, c]) => `  ${name.padEnd(11)} ${c.summary}`);
  return `usage: vmove <command> [options]\n\ncommands:\n${lines.join('\n')}\n`;
}

async function main(argv: string[]): Promise<number> {
  const [name, ...rest] = argv;
  if (!name || name === '-h' || name === '--help') {
    process.stdout.write(usage());
    return name ? 0 : 2;
  }
  const command = commands[name];
  if (!command) {
    process.stderr.write(`vmove: unknown command "${name}"\n\n${usage()}`);
    return 2;
  }
  const run = await command.load();
  return (await run(rest)) ?? 0;
}

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (err: unknown) => {
    componentLogger('cli').fatal({ err }, 'vmove failed');
    process.exitCode = 1;
  },
);
