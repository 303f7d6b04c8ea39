import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto';
import type { MasterKey } from './master-key.ts';

/** One encrypted value as stored in PostgreSQL. */
export interface SealedValue {
  keyId: string;
  iv: Buffer;
  ciphertext: Buffer;
  tag: Buffer;
}

/**
 * AES-256-GCM with the secret's name and version bound as associated data, so a
 * ciphertext copied onto another secret or version fails to open instead of decrypting
 * to the wrong credential.
 */
export class ValueCipher {
  constructor(private readonly key: MasterKey) {}

  private static aad(secretName: string, version: number): Buffer {
    return Buffer.from(`rekey:v1:${secretName}:${version}`, 'utf8');
  }

  seal(secretName: string, version: number, plaintext: string): SealedValue {
    const iv = randomBytes(12);
    const cipher = createCipheriv('aes-256-gcm', this.key.bytes, iv);
    cipher.setAAD(ValueCipher.aad(secretName, version));
    const ciphertext = Buffer.concat([cipher.update(plaintext, 'utf8'), cipher.final()]);
    return { keyId: this.key.id, iv, ciphertext, tag: cipher.getAuthTag() };
  }

  open(secretName: string, version: number, sealed: SealedValue): string {
    if (sealed.keyId !== this.key.id) {
      throw new Error(`value was sealed under master key ${sealed.keyId}, not the configured ${this.key.id}`);
    }
    const decipher = createDecipheriv('aes-256-gcm', this.key.bytes, sealed.iv);
    decipher.setAAD(ValueCipher.aad(secretName, version));
    decipher.setAuthTag(sealed.tag);
    return Buffer.concat([decipher.update(sealed.ciphertext), decipher.final()]).toString('utf8');
  }
}
