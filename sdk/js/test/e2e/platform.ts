// The platform as real processes on 127.0.0.1 for end-to-end tests: the control
// plane on SQLite and one evaluator following it over the gRPC sync stream (what
// `make run` starts), plus the admin calls the tests make.
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export const ORG = 'acme';
export const PROJECT = 'web';
export const ENV = 'production';
export const ENV_PATH = `/v1/orgs/${ORG}/projects/${PROJECT}/environments/${ENV}`;

/** A loopback address nobody listens on right now. */
export async function freeAddr(): Promise<string> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.listen(0, '127.0.0.1', () => {
      const a = s.address();
      s.close(() => (a && typeof a == 'object' ? resolve(`127.0.0.1:${a.port}`) : reject(new Error('no port'))));
    });
  });
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** A child process whose output is kept for failure reports. */
class Proc {
  logs = '';
  exited: Promise<number | null>;
  private p: ChildProcess;
  constructor(
    readonly name: string,
    bin: string,
    env: Record<string, string>,
    args: string[] = [],
  ) {
    this.p = spawn(bin, args, { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    const keep = (b: Buffer) => (this.logs = (this.logs + b.toString()).slice(-20000));
    this.p.stdout!.on('data', keep);
    this.p.stderr!.on('data', keep);
    this.exited = new Promise((r) => this.p.on('exit', (code) => r(code)));
  }
  get running() {
    return this.p.exitCode === null && this.p.signalCode === null;
  }
  /** SIGTERM, then waits (SIGKILL after 10 s). */
  async stop() {
    if (!this.running) return;
    this.p.kill('SIGTERM');
    const t = setTimeout(() => this.p.kill('SIGKILL'), 10000);
    await this.exited;
    clearTimeout(t);
  }
  async waitReady(url: string, timeoutMs = 30000) {
    const deadline = Date.now() + timeoutMs;
    while (Date.now() < deadline) {
      if (!this.running) throw new Error(`${this.name} exited before ${url} was ready:\n${this.logs}`);
      try {
        if ((await fetch(url)).status == 200) return;
      } catch {
        /* not listening yet */
      }
      await sleep(50);
    }
    throw new Error(`${this.name}: ${url} not ready after ${timeoutMs} ms:\n${this.logs}`);
  }
}

export interface PlatformOptions {
  bin: string;
  /** Browser origins the evaluator allows (FLAGFORGE_CORS_ORIGINS). */
  corsOrigins?: string;
}

/** The running platform of one test file. */
export class Platform {
  dir = mkdtempSync(join(tmpdir(), 'flagforge-e2e-'));
  adminToken = 'ffat_' + randomBytes(20).toString('hex');
  syncToken = 'sync-' + randomBytes(16).toString('hex');
  serverKey = '';
  clientKey = '';
  cpHTTP = '';
  cpGRPC = '';
  evalHTTP = '';
  cp?: Proc;
  evaluator?: Proc;
  constructor(private o: PlatformOptions) {}

  get evalURL() {
    return 'http://' + this.evalHTTP;
  }

  /** Starts the control plane, creates the project and both SDK keys, then the evaluator. */
  async start() {
    [this.cpHTTP, this.cpGRPC, this.evalHTTP] = await Promise.all([freeAddr(), freeAddr(), freeAddr()]);
    this.cp = new Proc('control plane', join(this.o.bin, 'flagforge-controlplane'), {
      FLAGFORGE_DATABASE_URL: 'sqlite://' + join(this.dir, 'flagforge.db'),
      FLAGFORGE_DATA_DIR: join(this.dir, 'controlplane'),
      FLAGFORGE_SYNC_TOKEN: this.syncToken,
      FLAGFORGE_GRPC_ADDR: this.cpGRPC,
      FLAGFORGE_HTTP_ADDR: this.cpHTTP,
      FLAGFORGE_BOOTSTRAP_ORG: ORG,
      FLAGFORGE_BOOTSTRAP_EMAIL: 'admin@acme.test',
      FLAGFORGE_BOOTSTRAP_TOKEN: this.adminToken,
      FLAGFORGE_RATE_LIMIT_RPS: '0',
      FLAGFORGE_LOG_LEVEL: 'warn',
    }, ['serve']);
    await this.cp.waitReady(`http://${this.cpHTTP}/readyz`);
    await this.admin('POST', `/v1/orgs/${ORG}/projects`, { project: { key: PROJECT, name: 'Web' } });
    this.serverKey = (await this.admin('POST', ENV_PATH + '/sdk-keys', { name: 'e2e server', kind: 'SDK_KEY_KIND_SERVER' })).secret;
    this.clientKey = (await this.admin('POST', ENV_PATH + '/sdk-keys', { name: 'e2e client', kind: 'SDK_KEY_KIND_CLIENT' })).secret;
    await this.startEvaluator();
  }

  /** (Re)starts the evaluator on its address, with its local copy kept between runs. */
  async startEvaluator() {
    this.evaluator = new Proc('evaluator', join(this.o.bin, 'flagforge-evaluator'), {
      FLAGFORGE_SYNC_ADDR: this.cpGRPC,
      FLAGFORGE_SYNC_TOKEN: this.syncToken,
      FLAGFORGE_TRUSTED_KEYS: join(this.dir, 'controlplane', 'signing-key.pub.pem'),
      FLAGFORGE_ENVIRONMENTS: `${ORG}/${PROJECT}/${ENV}`,
      FLAGFORGE_DATA_DIR: join(this.dir, 'evaluator'),
      FLAGFORGE_GRPC_ADDR: await freeAddr(),
      FLAGFORGE_HTTP_ADDR: this.evalHTTP,
      FLAGFORGE_ADMIN_ADDR: '',
      FLAGFORGE_RATE_LIMIT: '0',
      FLAGFORGE_CORS_ORIGINS: this.o.corsOrigins ?? '',
      FLAGFORGE_STREAM_HEARTBEAT: '2s',
      FLAGFORGE_LOG_LEVEL: 'warn',
    });
    await this.evaluator.waitReady(this.evalURL + '/readyz');
  }

  async stopEvaluator() {
    await this.evaluator?.stop();
  }

  async stop() {
    await this.evaluator?.stop();
    await this.cp?.stop();
    rmSync(this.dir, { recursive: true, force: true });
  }

  /** Output of both processes (for failure messages). */
  logs() {
    return `--- control plane ---\n${this.cp?.logs}\n--- evaluator ---\n${this.evaluator?.logs}`;
  }

  /** An admin REST call; throws unless it answers 200. */
  async admin(method: string, path: string, body?: unknown): Promise<any> {
    const r = await fetch(`http://${this.cpHTTP}${path}`, {
      method,
      headers: { Authorization: 'Bearer ' + this.adminToken, 'Content-Type': 'application/json' },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    const text = await r.text();
    if (r.status != 200) throw new Error(`${method} ${path}: ${r.status} ${text}`);
    return JSON.parse(text);
  }

  /** Creates a boolean flag and sets its production configuration. */
  async createFlag(key: string, clientVisible: boolean, config: object) {
    await this.admin('POST', `/v1/orgs/${ORG}/projects/${PROJECT}/flags`, { flag: { key, type: 'FLAG_TYPE_BOOLEAN', clientVisible } });
    await this.setConfig(key, config);
  }

  /** Replaces a flag's production configuration (with its current revision). */
  async setConfig(key: string, config: object) {
    const cur = await this.admin('GET', `${ENV_PATH}/flags/${key}`);
    await this.admin('PUT', `${ENV_PATH}/flags/${key}`, { config, revision: cur.config.revision });
  }

  /** POST /v1/evaluate on the evaluator. */
  async evaluate(key: string, flagKey: string, context: object, defaultValue?: unknown): Promise<any> {
    const r = await fetch(this.evalURL + '/v1/evaluate', {
      method: 'POST',
      headers: { Authorization: 'Bearer ' + key, 'Content-Type': 'application/json' },
      body: JSON.stringify({ flagKey, context, defaultValue }),
    });
    return r.json();
  }

  /** Waits until the evaluator answers flagKey with reason for the server key. */
  async waitServed(flagKey: string, reason: string, context: object = {}) {
    const deadline = Date.now() + 10000;
    for (;;) {
      const r = await this.evaluate(this.serverKey, flagKey, context);
      if (r.reason == reason) return;
      if (Date.now() > deadline) throw new Error(`${flagKey}: ${JSON.stringify(r)}, want ${reason}\n${this.logs()}`);
      await sleep(20);
    }
  }
}

/** One boolean flag per reason the engine gives (all client-visible but "hidden"). */
export const reasonFlags: Array<{ key: string; clientVisible: boolean; config: object }> = [
  { key: 'static', clientVisible: true, config: { on: true, offVariant: 'off', defaultServe: { variant: 'on' } } },
  {
    key: 'targeted',
    clientVisible: true,
    config: {
      on: true,
      offVariant: 'off',
      defaultServe: { variant: 'off' },
      rules: [{ id: 'east', serve: { variant: 'on' }, clauses: [{ attribute: 'region', operator: 'OPERATOR_IN', values: ['us-east-1'] }] }],
    },
  },
  {
    key: 'split',
    clientVisible: true,
    config: { on: true, offVariant: 'off', defaultServe: { rollout: { weights: [{ variant: 'on', weight: 50 }, { variant: 'off', weight: 50 }] } } },
  },
  { key: 'disabled', clientVisible: true, config: { on: false, offVariant: 'off', defaultServe: { variant: 'on' } } },
  {
    key: 'gated',
    clientVisible: true,
    config: { on: true, offVariant: 'off', defaultServe: { variant: 'on' }, prerequisites: [{ flagKey: 'disabled', variants: ['on'] }] },
  },
  { key: 'hidden', clientVisible: false, config: { on: true, offVariant: 'off', defaultServe: { variant: 'on' } } },
];

/** The evaluations that give every reason, and FLAG_NOT_FOUND. */
export const reasonCases: Array<{ flag: string; reason: string; context: Record<string, string> }> = [
  { flag: 'static', reason: 'STATIC', context: { targetingKey: 'user-1' } },
  { flag: 'targeted', reason: 'TARGETING_MATCH', context: { targetingKey: 'user-1', region: 'us-east-1' } },
  { flag: 'targeted', reason: 'DEFAULT', context: { targetingKey: 'user-1', region: 'eu-west-1' } },
  { flag: 'split', reason: 'SPLIT', context: { targetingKey: 'user-1' } },
  { flag: 'disabled', reason: 'DISABLED', context: { targetingKey: 'user-1' } },
  { flag: 'gated', reason: 'PREREQUISITE_FAILED', context: { targetingKey: 'user-1' } },
  { flag: 'nope', reason: 'ERROR', context: { targetingKey: 'user-1' } },
];

/** Creates reasonFlags and waits until the evaluator serves them all. */
export async function createReasonFlags(p: Platform) {
  for (const f of reasonFlags) await p.createFlag(f.key, f.clientVisible, f.config);
  await p.waitServed('hidden', 'STATIC');
}
