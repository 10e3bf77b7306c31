// Placeholder until the cluster sub-command lands.
export async function clusterCommand(_argv: string[]): Promise<number> {
  process.stderr.write('vmove cluster: not built yet\n');
  return 1;
}
