// Everything OpenFeature the browser pages use, in one bundle so the web SDK's
// singleton is shared: the web SDK, OpenFeature's OFREP web provider, our provider
// entry, and React with @openfeature/react-sdk.
export { OpenFeature } from '@openfeature/web-sdk';
export { OFREPWebProvider } from '@openfeature/ofrep-web-provider';
export { FlagForgeProvider } from '../../src/openfeature.js';
export { OpenFeatureProvider, useFlag } from '@openfeature/react-sdk';
export { createElement } from 'react';
export { createRoot } from 'react-dom/client';
