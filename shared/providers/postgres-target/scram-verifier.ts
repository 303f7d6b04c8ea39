import { createHash, createHmac, pbkdf2, randomBytes } from 'node:crypto';
import { promisify } from 'node:util';

const pbkdf2Async = promisify(pbkdf2);

/**
 * The SCRAM-SHA-256 verifier PostgreSQL stores for a password (RFC 5802 / RFC 7677, in
 * PostgreSQL's text form `SCRAM-SHA-256$<iterations>:<salt>$<StoredKey>:<ServerKey>`).
 * Sending this in `ALTER ROLE … PASSWORD` instead of the plaintext means the password
 * never reaches the server: not its statement log, not pg_stat_statements, not a
 * replica. Only standard primitives (PBKDF2, HMAC, SHA-256) are used.
 *
 * PostgreSQL runs the password through SASLprep first; for printable ASCII that is the
 * identity, so passwords are limited to printable ASCII here rather than reimplementing it.
 */
export async function scramSha256Verifier(password: string, iterations = 4096, salt: Buffer = randomBytes(16)): Promise<string> {
  if (!/^[\x21-\x7e]+$/.test(password)) throw new Error('SCRAM verifier: password must be printable ASCII');
  const salted = await pbkdf2Async(Buffer.from(password, 'utf8'), salt, iterations, 32, 'sha256');
  const clientKey = createHmac('sha256', salted).update('Client Key').digest();
  const storedKey = createHash('sha256').update(clientKey).digest();
  const serverKey = createHmac('sha256', salted).update('Server Key').digest();
  return `SCRAM-SHA-256$${iterations}:${salt.toString('base64')}$${storedKey.toString('base64')}:${serverKey.toString('base64')}`;
}
