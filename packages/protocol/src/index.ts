export * from './errors.js';
export * from './message-id.js';
export * from './channel-id.js';
export * from './text-frame.js';
export * from './record.js';
export * from './ttl-policy.js';
export * from './publish-request.js';
export * from './v4/index.js';
