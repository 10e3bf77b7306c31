// Placeholder until the agent sub-command lands.
export async function agentCommand(_argv: string[]): Promise<number> {
  process.stderr.write('vmove agent: not built yet\n');
  return 1;
}
