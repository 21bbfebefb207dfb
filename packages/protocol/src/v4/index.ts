export * from './schema.js';
export * from './codec.js';
export * from './request.js';
