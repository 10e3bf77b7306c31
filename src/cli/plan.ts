// Placeholder until the plan sub-command lands.
export async function planCommand(_argv: string[]): Promise<number> {
  process.stderr.write('vmove plan: not built yet\n');
  return 1;
}
