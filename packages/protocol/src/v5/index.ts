export * from './json-rpc.js';
export * from './jwt.js';
