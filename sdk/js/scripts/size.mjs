// Size budget of the browser SDK: the core entry minified and gzipped must stay
// within 3 kB (3072 bytes); the OpenFeature provider entry is reported separately
// (@openfeature/* stay external: they are the application's). Exits 1 over budget.
import { build } from 'esbuild';
import { gzipSync } from 'node:zlib';

const BUDGET = 3072;
async function size(entry) {
  const r = await build({
    entryPoints: [entry], bundle: true, minify: true, format: 'esm', target: 'es2020',
    write: false, external: ['@openfeature/*'], logLevel: 'silent',
  });
  const code = r.outputFiles[0].contents;
  return { min: code.length, gz: gzipSync(code, { level: 9 }).length };
}
const core = await size('src/index.ts');
const provider = await size('src/openfeature.ts');
console.log(`core (@flagforge/browser): ${core.min} B min, ${core.gz} B min+gzip (budget ${BUDGET} B)`);
console.log(`OpenFeature provider entry (@flagforge/browser/openfeature, core included, @openfeature/* external): ${provider.min} B min, ${provider.gz} B min+gzip`);
if (core.gz > BUDGET) {
  console.error(`size: the core is ${core.gz} B min+gzip, over the ${BUDGET} B budget`);
  process.exit(1);
}
