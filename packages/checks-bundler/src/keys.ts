import { createPrivateKey, generateKeyPairSync, type KeyObject } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { ConfigError } from '@gather/core';
import { SCOPE } from './collect.js';

const HOW_TO_MAKE =
  'Make one with "gather-bundle keygen --out-private key.pem --out-public key.pub.pem" ' +
  'or "openssl genpkey -algorithm ed25519 -out key.pem".';

export interface SigningKeyPair {
  /** PKCS#8 PEM ("BEGIN PRIVATE KEY"): keep it secret (a CI secret). */
  privateKeyPem: string;
  /** SPKI PEM ("BEGIN PUBLIC KEY"): ship it with the agent. */
  publicKeyPem: string;
}

/** A fresh ed25519 key pair, in the same PEM formats as `openssl genpkey -algorithm ed25519` / `openssl pkey -pubout`. */
export function generateSigningKeyPair(): SigningKeyPair {
  const { privateKey, publicKey } = generateKeyPairSync('ed25519', {
    privateKeyEncoding: { type: 'pkcs8', format: 'pem' },
    publicKeyEncoding: { type: 'spki', format: 'pem' },
  });
  return { privateKeyPem: privateKey, publicKeyPem: publicKey };
}

/** Parses an ed25519 PKCS#8 PEM private key; `source` names it in error messages. */
export function parseSigningKey(pem: string | Buffer, source = 'the signing key'): KeyObject {
  const text = pem.toString();
  let key: KeyObject;
  try {
    key = createPrivateKey({ key: text, format: 'pem' });
  } catch (cause) {
    let why = 'it is not a PEM private key';
    if (text.includes('ENCRYPTED PRIVATE KEY')) {
      why = 'it is encrypted; decrypt it with "openssl pkey -in encrypted.pem -out key.pem"';
    } else if (text.includes('OPENSSH PRIVATE KEY')) {
      why = 'it is an OpenSSH key; gather needs a PKCS#8 PEM ("BEGIN PRIVATE KEY")';
    } else if (text.includes('PUBLIC KEY')) {
      why = 'it is a public key; signing needs the private key';
    }
    throw new ConfigError(`Cannot use ${source} to sign: ${why}. ${HOW_TO_MAKE}`, { scope: SCOPE, cause });
  }
  if (key.asymmetricKeyType !== 'ed25519') {
    throw new ConfigError(
      `Cannot use ${source} to sign: it is an ${key.asymmetricKeyType ?? 'unknown'} key, gather bundles are signed with ed25519. ${HOW_TO_MAKE}`,
      { scope: SCOPE },
    );
  }
  return key;
}

/** Reads and parses the private key given either inline or as a file path (exactly one). */
export async function loadSigningKey(options: {
  privateKeyPem?: string | Buffer | undefined;
  privateKeyPath?: string | undefined;
}): Promise<KeyObject> {
  const { privateKeyPem, privateKeyPath } = options;
  if ((privateKeyPem === undefined) === (privateKeyPath === undefined)) {
    throw new ConfigError('Pass exactly one of privateKeyPem or privateKeyPath (the ed25519 signing key).', { scope: SCOPE });
  }
  if (privateKeyPem !== undefined) return parseSigningKey(privateKeyPem);
  let pem: Buffer;
  try {
    pem = await readFile(privateKeyPath as string);
  } catch (cause) {
    const code = (cause as NodeJS.ErrnoException).code ?? 'error';
    throw new ConfigError(
      `Cannot read the signing key file ${privateKeyPath} (${code}). Pass --key with the path of an ed25519 private key PEM. ${HOW_TO_MAKE}`,
      {
        scope: SCOPE,
        cause,
      },
    );
  }
  return parseSigningKey(pem, `the key file ${privateKeyPath}`);
}
