/**
 * FlagForge as an OpenFeature web provider (a separate entry point, so the core
 * stays small): `OpenFeature.setProvider(new FlagForgeProvider({url, clientKey}))`,
 * then the web SDK's clients or @openfeature/react-sdk's hooks. Evaluation is
 * synchronous from the client's memory; a change of any flag emits
 * PROVIDER_CONFIGURATION_CHANGED naming it; OpenFeature.setContext switches user
 * (identify).
 */
import {
  ErrorCode,
  OpenFeatureEventEmitter,
  ProviderEvents,
  ProviderFatalError,
  type EvaluationContext,
  type JsonValue,
  type Provider,
  type ResolutionDetails,
} from '@openfeature/web-sdk';
import { createClient, type FlagForgeClient, type Options } from './client.js';
import type { Context } from './types.js';

/** Options of FlagForgeProvider: the client's, without the context (OpenFeature's). */
export type ProviderOptions = Omit<Options, 'context'> & {
  /** How long initialize waits for live values before serving what it has (ms, default 3000). */
  readyTimeout?: number;
};

const codes = new Set<string>(Object.values(ErrorCode));

/** The FlagForge OpenFeature web provider. */
export class FlagForgeProvider implements Provider {
  readonly metadata = { name: 'FlagForge' } as const;
  readonly runsOn = 'client' as const;
  readonly events = new OpenFeatureEventEmitter();
  /** The underlying client (available once initialize has run). */
  client?: FlagForgeClient;
  private o: ProviderOptions;

  constructor(options: ProviderOptions) {
    this.o = options;
  }

  /** Starts the client for context and waits for live values (or the timeout).
   * A refused key fails initialization for good (PROVIDER_FATAL). */
  async initialize(context?: EvaluationContext): Promise<void> {
    const c = (this.client = createClient({ ...this.o, context: (context || {}) as Context }));
    c.on('*', (_d, key) => this.events.emit(ProviderEvents.ConfigurationChanged, { flagsChanged: [key] }));
    await c.ready(this.o.readyTimeout);
    if (c.detail('').errorCode == 'UNAUTHORIZED') throw new ProviderFatalError('the evaluator refused the client SDK key');
  }

  /** Re-evaluates every flag for the new context. */
  async onContextChange(_old: EvaluationContext, next: EvaluationContext): Promise<void> {
    await this.client?.identify(next as Context, this.o.readyTimeout);
  }

  async onClose(): Promise<void> {
    this.client?.close();
  }

  private resolve<T>(key: string, def: T): ResolutionDetails<T> {
    const d = this.client ? this.client.detail(key, def) : { value: def, reason: 'ERROR', errorCode: 'PROVIDER_NOT_READY' };
    const out: ResolutionDetails<T> = { value: d.value, variant: d.variant, reason: d.reason };
    if (d.errorCode) {
      out.errorCode = (codes.has(d.errorCode) ? d.errorCode : ErrorCode.GENERAL) as ErrorCode;
      out.errorMessage = d.errorCode;
    }
    return out;
  }

  resolveBooleanEvaluation(key: string, def: boolean): ResolutionDetails<boolean> {
    return this.resolve(key, def);
  }

  resolveStringEvaluation(key: string, def: string): ResolutionDetails<string> {
    return this.resolve(key, def);
  }

  resolveNumberEvaluation(key: string, def: number): ResolutionDetails<number> {
    return this.resolve(key, def);
  }

  resolveObjectEvaluation<T extends JsonValue>(key: string, def: T): ResolutionDetails<T> {
    return this.resolve(key, def);
  }
}
