import { XdrError, XdrReader, XdrWriter } from '../../../../src/drivers/libvirt/xdr';

const hex = (w: XdrWriter): string => w.toBuffer().toString('hex');

describe('XDR as libvirt puts it on the wire', () => {
  test('integers are big-endian words; hypers are two words', () => {
    expect(hex(new XdrWriter().int(-2).uint(0x20008086))).toBe('fffffffe20008086');
    expect(hex(new XdrWriter().uhyper(8796093022207n))).toBe('000007ffffffffff');
    expect(hex(new XdrWriter().hyper(-1))).toBe('ffffffffffffffff');
  });

  test('strings and opaque data carry their length and are padded to four bytes', () => {
    expect(hex(new XdrWriter().string('abc'))).toBe('0000000361626300');
    expect(hex(new XdrWriter().string('abcd'))).toBe('0000000461626364');
    expect(hex(new XdrWriter().string(''))).toBe('00000000');
    expect(hex(new XdrWriter().fixedOpaque(Buffer.from([1, 2, 3, 4, 5])))).toBe('0102030405000000');
  });

  test('optional values are a present flag, then the value', () => {
    expect(hex(new XdrWriter().optString(null))).toBe('00000000');
    expect(hex(new XdrWriter().optString('x'))).toBe('000000010000000178000000');
  });

  test('what is written reads back', () => {
    const uuid = Buffer.from('0b7b6c2e111142228333444455556666', 'hex');
    const buf = new XdrWriter()
      .string('vmove_vm')
      .fixedOpaque(uuid)
      .int(-1)
      .array(['vda', 'vdb'], (w, s) => w.string(s))
      .optString(null)
      .optString('qemu:///system')
      .double(0.5)
      .uhyper(1n << 40n)
      .bool(true)
      .toBuffer();
    const r = new XdrReader(buf);
    expect(r.string()).toBe('vmove_vm');
    expect(r.fixedOpaque(16).equals(uuid)).toBe(true);
    expect(r.int()).toBe(-1);
    expect(r.array((x) => x.string())).toEqual(['vda', 'vdb']);
    expect(r.optString()).toBeNull();
    expect(r.optString()).toBe('qemu:///system');
    expect(r.double()).toBe(0.5);
    expect(r.uhyper()).toBe(1n << 40n);
    expect(r.bool()).toBe(true);
    expect(r.remaining()).toBe(0);
  });

  test('truncated or absurd input is refused instead of read past its end', () => {
    expect(() => new XdrReader(Buffer.from('000000', 'hex')).int()).toThrow(XdrError);
    expect(() => new XdrReader(Buffer.from('0000000861626364', 'hex')).string()).toThrow(XdrError);
    // An array claiming a billion items in eight bytes.
    expect(() => new XdrReader(Buffer.from('3b9aca0000000000', 'hex')).array((r) => r.int())).toThrow(XdrError);
  });
});
