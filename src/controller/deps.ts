// What every reconciler of the controller works with.
import type { KubeApi } from '../kube/api';
import type { EventRecorder } from '../kube/events';
import type { AgentOps } from './agentOps';
import type { ClusterView } from './clusterView';
import type { ControllerConfig } from './config';
import type { ControllerMetrics } from './metrics';
import type { Writers } from './writers';

export interface ControllerDeps {
  api: KubeApi;
  view: ClusterView;
  writers: Writers;
  agents: AgentOps;
  events: EventRecorder;
  config: ControllerConfig;
  metrics?: ControllerMetrics;
}
