#!/usr/bin/env node
// `vmove <command> …`: one program, one sub-command per role.
// Each command's modules load only when it runs: the controller never loads the agent's drivers
// nor client-node's API models, which the agent uses.
import { componentLogger } from '../log';

type Command = (argv: string[]) => Promise<number | void>;

const commands: Record<string, { summary: string; run: Command }> = {
  cluster: { summary: 'local control plane: up | down | status | kubeconfig', run: async (argv) => (await import('./cluster.js')).clusterCommand(argv) },
  controller: { summary: 'run the controller (leader-elected)', run: async (argv) => (await import('./controller.js')).controllerCommand(argv) },
  agent: { summary: 'run a node agent: --node NAME --driver sim|qemu|libvirt', run: async (argv) => (await import('./agent.js')).agentCommand(argv) },
  plan: { summary: 'plan evacuate NODE: show what an evacuation would do, moving nothing', run: async (argv) => (await import('./plan.js')).planCommand(argv) },
  demo: { summary: 'run the demo: control plane, CRDs, controller, demo nodes and VMs', run: async (argv) => (await import('./demo.js')).demoCommand(argv) },
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
  return (await command.run(rest)) ?? 0;
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
