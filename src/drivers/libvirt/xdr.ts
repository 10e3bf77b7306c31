// XDR (RFC 4506) encoding and decoding: the wire format of libvirt's remote protocol.
// Only the shapes libvirt's protocol uses: 32-bit ints, 64-bit hypers, doubles, strings,
// fixed and variable opaque data, counted arrays and optional ("pointer") values.

const pad = (n: number): number => (4 - (n % 4)) % 4;

export class XdrWriter {
  private buf = Buffer.alloc(256);
  private pos = 0;

  private ensure(n: number): void {
    if (this.pos + n <= this.buf.length) return;
    const next = Buffer.alloc(Math.max(this.buf.length * 2, this.pos + n));
    this.buf.copy(next, 0, 0, this.pos);
    this.buf = next;
  }

  int(v: number): this {
    this.ensure(4);
    this.buf.writeInt32BE(v, this.pos);
    this.pos += 4;
    return this;
  }

  uint(v: number): this {
    this.ensure(4);
    this.buf.writeUInt32BE(v >>> 0, this.pos);
    this.pos += 4;
    return this;
  }

  bool(v: boolean): this {
    return this.int(v ? 1 : 0);
  }

  hyper(v: bigint | number): this {
    this.ensure(8);
    this.buf.writeBigInt64BE(BigInt(v), this.pos);
    this.pos += 8;
    return this;
  }

  uhyper(v: bigint | number): this {
    this.ensure(8);
    this.buf.writeBigUInt64BE(BigInt(v), this.pos);
    this.pos += 8;
    return this;
  }

  double(v: number): this {
    this.ensure(8);
    this.buf.writeDoubleBE(v, this.pos);
    this.pos += 8;
    return this;
  }

  /** Fixed-length opaque data (e.g. a 16-byte UUID). */
  fixedOpaque(data: Buffer): this {
    this.ensure(data.length + pad(data.length));
    data.copy(this.buf, this.pos);
    this.pos += data.length;
    this.buf.fill(0, this.pos, this.pos + pad(data.length));
    this.pos += pad(data.length);
    return this;
  }

  varOpaque(data: Buffer): this {
    this.uint(data.length);
    return this.fixedOpaque(data);
  }

  string(s: string): this {
    return this.varOpaque(Buffer.from(s, 'utf8'));
  }

  /** An optional value: a boolean "present" word, then the value when present. */
  optional<T>(v: T | null | undefined, write: (w: this, v: T) => void): this {
    if (v === null || v === undefined) return this.bool(false);
    this.bool(true);
    write(this, v);
    return this;
  }

  optString(s: string | null | undefined): this {
    return this.optional(s, (w, v) => w.string(v));
  }

  array<T>(items: readonly T[], write: (w: this, v: T) => void): this {
    this.uint(items.length);
    for (const item of items) write(this, item);
    return this;
  }

  toBuffer(): Buffer {
    return this.buf.subarray(0, this.pos);
  }
}

export class XdrError extends Error {
  override readonly name = 'XdrError';
}

export class XdrReader {
  private pos = 0;

  constructor(private readonly buf: Buffer) {}

  private take(n: number): number {
    if (this.pos + n > this.buf.length) throw new XdrError(`XDR data ends at ${this.buf.length}, wanted ${n} bytes at ${this.pos}`);
    const at = this.pos;
    this.pos += n;
    return at;
  }

  int(): number {
    return this.buf.readInt32BE(this.take(4));
  }

  uint(): number {
    return this.buf.readUInt32BE(this.take(4));
  }

  bool(): boolean {
    return this.int() !== 0;
  }

  hyper(): bigint {
    return this.buf.readBigInt64BE(this.take(8));
  }

  uhyper(): bigint {
    return this.buf.readBigUInt64BE(this.take(8));
  }

  double(): number {
    return this.buf.readDoubleBE(this.take(8));
  }

  fixedOpaque(n: number): Buffer {
    const at = this.take(n + pad(n));
    return Buffer.from(this.buf.subarray(at, at + n));
  }

  varOpaque(max = Number.MAX_SAFE_INTEGER): Buffer {
    const n = this.uint();
    if (n > max) throw new XdrError(`opaque of ${n} bytes exceeds its limit of ${max}`);
    return this.fixedOpaque(n);
  }

  string(): string {
    return this.varOpaque().toString('utf8');
  }

  optional<T>(read: (r: this) => T): T | null {
    return this.bool() ? read(this) : null;
  }

  optString(): string | null {
    return this.optional((r) => r.string());
  }

  array<T>(read: (r: this) => T): T[] {
    const n = this.uint();
    if (n * 4 > this.remaining()) throw new XdrError(`array of ${n} items cannot fit in ${this.remaining()} bytes`);
    const out: T[] = [];
    for (let i = 0; i < n; i++) out.push(read(this));
    return out;
  }

  remaining(): number {
    return this.buf.length - this.pos;
  }
}
