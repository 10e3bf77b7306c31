/** IPv6 literals need brackets inside a URI. */
export const uriHost = (address: string): string => (address.includes(':') && !address.startsWith('[') ? `[${address}]` : address);
