export * from './config.js';
export * from './logger.js';
export * from './uws.js';
export * from './http.js';
export * from './lifecycle.js';
export * from './main.js';
export * from './app-routes.js';
export * from './metrics.js';
