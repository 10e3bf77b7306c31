// Kubernetes time formats. MicroTime fields (Lease renewTime, Event eventTime) need exactly six
// fractional digits; metav1.Time fields take RFC 3339 seconds.
export const microTime = (d: Date = new Date()): string => d.toISOString().replace(/\.(\d{3})Z$/, '.$1000Z');
export const metaTime = (d: Date = new Date()): string => d.toISOString().replace(/\.\d{3}Z$/, 'Z');
export const nowIso = (): string => new Date().toISOString();
