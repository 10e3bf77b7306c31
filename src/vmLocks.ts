// One FIFO lock per VM: operations on a VM run one at a time, in arrival order. The agent holds
// it across an operation's steps; the qemu and libvirt drivers, around each call that changes a
// VM (their QMP and libvirt sequences must not interleave).
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

  /** Runs `fn` holding the lock of `key`; the lock is released however `fn` ends. */
  async run<T>(key: string, fn: () => Promise<T>): Promise<T> {
    const release = await this.acquire(key);
    try {
      return await fn();
    } finally {
      release();
    }
  }
}
