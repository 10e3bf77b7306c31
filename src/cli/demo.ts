// Placeholder until the demo sub-command lands.
export async function demoCommand(_argv: string[]): Promise<number> {
  process.stderr.write('vmove demo: not built yet\n');
  return 1;
}
