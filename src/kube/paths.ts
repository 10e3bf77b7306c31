// REST paths of the resources vmove reads and writes.
import { GROUP, VERSION } from '../api/types';

interface Where {
  namespace?: string;
  name?: string;
  subresource?: 'status';
}

const tail = (plural: string, w: Where): string =>
  `${w.namespace ? `/namespaces/${w.namespace}` : ''}/${plural}${w.name ? `/${encodeURIComponent(w.name)}` : ''}${w.subresource ? `/${w.subresource}` : ''}`;

export const vmovePath = (plural: string, w: Where = {}): string => `/apis/${GROUP}/${VERSION}${tail(plural, w)}`;
export const corePath = (plural: string, w: Where = {}): string => `/api/v1${tail(plural, w)}`;
export const leasePath = (w: Where = {}): string => `/apis/coordination.k8s.io/v1${tail('leases', w)}`;
export const eventPath = (w: Where = {}): string => corePath('events', w);

/** Cache key of an object: namespace/name, or name for cluster-scoped objects. */
export const keyOf = (o: { metadata?: { namespace?: string; name?: string } }): string =>
  o.metadata?.namespace ? `${o.metadata.namespace}/${o.metadata.name}` : (o.metadata?.name ?? '');

export const splitKey = (key: string): { namespace?: string; name: string } => {
  const i = key.indexOf('/');
  return i < 0 ? { name: key } : { namespace: key.slice(0, i), name: key.slice(i + 1) };
};
