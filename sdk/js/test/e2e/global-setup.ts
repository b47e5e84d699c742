// Builds the control plane and evaluator from this repository once for every e2e
// test file, and makes sure Chromium is installed (scripts/ensure-browser.sh).
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { TestProject } from 'vitest/node';

declare module 'vitest' {
  export interface ProvidedContext {
    bin: string;
    chromium: string;
  }
}

export default function setup(project: TestProject) {
  const root = resolve(fileURLToPath(new URL('.', import.meta.url)), '../../../..');
  const bin = mkdtempSync(join(tmpdir(), 'flagforge-e2e-bin-'));
  for (const name of ['controlplane', 'evaluator']) {
    execFileSync('go', ['build', '-o', join(bin, 'flagforge-' + name), './services/' + name + '/cmd/' + name], { cwd: root, stdio: 'inherit' });
  }
  const chromium = execFileSync('bash', [join(root, 'scripts/ensure-browser.sh')], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'] }).trim();
  project.provide('bin', bin);
  project.provide('chromium', chromium);
  return () => rmSync(bin, { recursive: true, force: true });
}
