// Structured JSON logs (pino). Pretty output only when VMOVE_LOG_PRETTY=1 (make run sets it).
import pino from 'pino';

const pretty = process.env.VMOVE_LOG_PRETTY === '1';

export const logger = pino({
  level: process.env.VMOVE_LOG_LEVEL ?? 'info',
  base: { pid: process.pid },
  ...(pretty
    ? {
        transport: {
          target: 'pino-pretty',
          options: { colorize: true, singleLine: true, translateTime: 'HH:MM:ss.l', ignore: 'pid,hostname,component', messageFormat: '{component}: {msg}' },
        },
      }
    : {}),
});

export type Logger = pino.Logger;

export const componentLogger = (component: string, bindings: Record<string, unknown> = {}): Logger =>
  logger.child({ component, ...bindings });
