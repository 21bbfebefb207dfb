export * from './json-rpc.js';
export * from './jwt.js';
export * from './portal-api.js';
