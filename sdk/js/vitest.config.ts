import { defineConfig } from 'vitest/config';

// Unit tests: no network, no browser (fake fetch, EventSource, storage, timers).
export default defineConfig({ test: { include: ['test/unit/**/*.test.ts'], environment: 'node' } });
