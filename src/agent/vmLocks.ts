// One FIFO lock per VM: operations on a VM run one at a time, in arrival order.
export class VmLocks {
  private readonly tails = new Map<string, Promise<void>>();

  /** Resolves with the function that releases the lock once every earlier holder released it. */
  async acquire(key: string): Promise<() => void> {
    const prev = this.tails.get(key) ?? Promise.resolve();
    let release!: () => void;
    const mine = new Promise<void>((resolve) => (release = resolve));
    const tail = prev.then(() => mine);
    this.tails.set(key, tail);
    await prev;
    return () => {
      release();
      // Forget the VM once nobody waits behind this holder.
      if (this.tails.get(key) === tail) this.tails.delete(key);
    };
  }
}
