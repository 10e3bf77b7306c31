// Placeholder until the controller sub-command lands.
export async function controllerCommand(_argv: string[]): Promise<number> {
  process.stderr.write('vmove controller: not built yet\n');
  return 1;
}
