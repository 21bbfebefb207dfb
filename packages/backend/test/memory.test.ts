import { createMemoryBackend } from '../src/index.js';
import { CONFORMANCE_OPTIONS, backendConformance } from './conformance.js';

backendConformance('memory', async () => ({ backend: createMemoryBackend(CONFORMANCE_OPTIONS), cleanup: async () => {} }));
