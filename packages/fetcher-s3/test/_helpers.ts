// Shared by the tests: bundles made inline, the real S3 server from the environment, and a small HTTP proxy
// that sits in front of that real server to count requests and inject faults (503, early close, silence).
import { createHash, randomBytes } from 'node:crypto';
import { mkdtempSync } from 'node:fs';
import { createServer, request, type IncomingHttpHeaders, type IncomingMessage } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DeleteObjectsCommand, ListObjectsV2Command, PutObjectCommand, S3Client } from '@aws-sdk/client-s3';
import { afterAll } from 'vitest';
import { tar } from '@gather/core/testing';

export { tar };

/** Compare big buffers by hash: deep equality of megabytes is slow and its diff unreadable. */
export const sha256 = (data: Uint8Array): string => createHash('sha256').update(data).digest('hex');

export function tempDir(prefix = 'gather-s3-test-'): string {
  return mkdtempSync(join(tmpdir(), prefix));
}

/** A bundle-shaped tar: manifest.json with `version` and `sequence`, and a runner.js padded with random bytes to ~size. */
export function bundle(version: string, size = 4096, sequence = 1): Buffer {
  const manifest = JSON.stringify({
    format: 1,
    version,
    created: '2026-01-01T00:00:00.000Z',
    sequence,
    payload_bytes: 0,
    checks: { abuse: [], analytics: [] },
    files: {},
  });
  const pad = Math.max(0, size - 2560 - manifest.length);
  const filler = randomBytes(Math.ceil((pad * 3) / 4) + 3)
    .toString('base64')
    .slice(0, pad);
  return tar([
    { name: 'manifest.json', data: manifest },
    { name: 'runner.js', data: `// ${filler}` },
  ]);
}

export interface S3Env {
  endpoint: string;
  accessKeyId: string;
  secretAccessKey: string;
  bucket: string;
}

/** The real S3 server of tools/services; throws (never skips) when the integration setup did not provide one. */
export function s3Env(): S3Env {
  const read = (name: string): string => {
    const value = process.env[name];
    if (!value) {
      throw new Error(
        `${name} is not set: run the integration tests through the vitest "integration" project (tools/vitest-services.ts ` +
          'starts S3), or export the lines printed by "tools/services start s3".',
      );
    }
    return value;
  };
  return {
    endpoint: read('GATHER_S3_ENDPOINT'),
    accessKeyId: read('GATHER_S3_ACCESS_KEY_ID'),
    secretAccessKey: read('GATHER_S3_SECRET_ACCESS_KEY'),
    bucket: read('GATHER_S3_BUCKET'),
  };
}

export function connection(env: S3Env, endpoint = env.endpoint) {
  return {
    endpoint,
    credentials: { accessKeyId: env.accessKeyId, secretAccessKey: env.secretAccessKey },
  };
}

export function adminClient(env: S3Env): S3Client {
  return new S3Client({ ...connection(env), region: 'us-east-1', forcePathStyle: true });
}

export function uniquePrefix(name: string): string {
  return `test-fetcher-s3/${name}-${Date.now().toString(36)}-${randomBytes(3).toString('hex')}`;
}

export async function putObject(client: S3Client, bucket: string, key: string, body: Buffer | string, metadata?: Record<string, string>) {
  await client.send(new PutObjectCommand({ Bucket: bucket, Key: key, Body: body, ...(metadata ? { Metadata: metadata } : {}) }));
}

/** Deletes every object under `prefix/`. */
export async function deletePrefix(client: S3Client, bucket: string, prefix: string): Promise<void> {
  let token: string | undefined;
  do {
    const page = await client.send(
      new ListObjectsV2Command({ Bucket: bucket, Prefix: `${prefix}/`, ...(token ? { ContinuationToken: token } : {}) }),
    );
    const keys = (page.Contents ?? []).map((object) => ({ Key: object.Key! }));
    if (keys.length > 0) await client.send(new DeleteObjectsCommand({ Bucket: bucket, Delete: { Objects: keys } }));
    token = page.IsTruncated ? page.NextContinuationToken : undefined;
  } while (token);
}

/** One request as the proxy saw it. */
export interface ProxiedRequest {
  method: string;
  /** Path and query, e.g. /bucket/prefix/latest */
  url: string;
  headers: IncomingHttpHeaders;
  /** Status sent to the client. */
  status: number;
  /** Response body bytes sent to the client. */
  bodyBytes: number;
}

export type ProxyAction =
  | { kind: 'forward' }
  /** Answer with this status and an S3-style XML error, without asking the server. */
  | { kind: 'status'; status: number; code: string }
  /** Forward, but close the connection after this many body bytes. */
  | { kind: 'truncate'; afterBytes: number }
  /** Accept the request and never answer. */
  | { kind: 'hang' };

export interface FaultProxy {
  url: string;
  requests: ProxiedRequest[];
  close(): Promise<void>;
}

/**
 * An HTTP proxy on 127.0.0.1 in front of the real S3 server. `plan` decides per request (0-based index).
 * The Host header is passed through unchanged, so SigV4 signatures made for the proxy URL stay valid.
 */
export async function startProxy(
  target: string,
  plan: (req: IncomingMessage, index: number) => ProxyAction = () => ({ kind: 'forward' }),
): Promise<FaultProxy> {
  const upstream = new URL(target);
  const requests: ProxiedRequest[] = [];
  const server = createServer((req, res) => {
    const index = requests.length;
    const record: ProxiedRequest = { method: req.method ?? '', url: req.url ?? '', headers: req.headers, status: 0, bodyBytes: 0 };
    requests.push(record);
    const action = plan(req, index);
    if (action.kind === 'hang') {
      req.resume();
      return;
    }
    if (action.kind === 'status') {
      req.resume();
      req.on('end', () => {
        const body = `<?xml version="1.0" encoding="UTF-8"?><Error><Code>${action.code}</Code><Message>injected by the test proxy</Message></Error>`;
        record.status = action.status;
        record.bodyBytes = Buffer.byteLength(body);
        res.writeHead(action.status, { 'content-type': 'application/xml', 'content-length': Buffer.byteLength(body) });
        res.end(body);
      });
      return;
    }
    const forward = request(
      { host: upstream.hostname, port: upstream.port, method: req.method, path: req.url, headers: req.headers },
      (up) => {
        record.status = up.statusCode ?? 0;
        res.writeHead(up.statusCode ?? 502, up.headers);
        up.on('data', (chunk: Buffer) => {
          if (action.kind === 'truncate') {
            const room = action.afterBytes - record.bodyBytes;
            if (room <= 0) return;
            const part = chunk.subarray(0, room);
            record.bodyBytes += part.length;
            res.write(part);
            if (record.bodyBytes >= action.afterBytes) {
              up.destroy();
              // Let the written bytes go out, then drop the connection mid-body.
              setTimeout(() => res.socket?.destroy(), 20);
            }
            return;
          }
          record.bodyBytes += chunk.length;
          res.write(chunk);
        });
        up.on('end', () => res.end());
        up.on('error', () => res.destroy());
      },
    );
    forward.on('error', () => res.destroy());
    req.pipe(forward);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    requests,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

/** A port nothing listens on (bound then released). */
export async function closedPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

export const FAST_RETRY = { attempts: 3, baseDelayMs: 10, maxDelayMs: 50 };

/**
 * What an integration test file shares: the S3 env, an admin client, and unique prefixes and proxies that
 * are all cleaned up (objects deleted, proxies closed) after the file.
 */
export function s3TestScope() {
  const env = s3Env();
  const admin = adminClient(env);
  const prefixes: string[] = [];
  const proxies: FaultProxy[] = [];
  afterAll(async () => {
    for (const proxy of proxies) await proxy.close();
    for (const prefix of prefixes) await deletePrefix(admin, env.bucket, prefix);
    admin.destroy();
  });
  return {
    env,
    bucket: env.bucket,
    admin,
    proxies,
    newPrefix(name: string): string {
      const prefix = uniquePrefix(name);
      prefixes.push(prefix);
      return prefix;
    },
  };
}
