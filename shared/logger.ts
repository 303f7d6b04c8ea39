import { pino, type Logger, type DestinationStream } from 'pino';

export type { Logger };

/**
 * Paths pino censors wherever they appear. Values are never meant to be logged at all;
 * this list is the second line of defence for the day somebody logs a whole object.
 */
export const redactPaths = [
  'value',
  'password',
  'secret',
  'token',
  'privateKey',
  'privateJwk',
  'ciphertext',
  'authorization',
  '*.value',
  '*.password',
  '*.secret',
  '*.token',
  '*.privateKey',
  '*.privateJwk',
  '*.ciphertext',
  '*.authorization',
  'req.headers.authorization',
  'req.headers["webhook-signature"]',
];

export function createLogger(opts: { level: string; name?: string }, destination?: DestinationStream): Logger {
  return pino(
    {
      level: opts.level,
      name: opts.name ?? 'rekey',
      redact: { paths: redactPaths, censor: '[redacted]' },
      base: { pid: process.pid },
    },
    destination,
  );
}
