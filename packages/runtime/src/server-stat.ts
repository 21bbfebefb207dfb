import type { Config } from './config.js';

/**
 * The parts of a `/server-stat/` entry that Bitrix push server 2.0 adds to every process and that
 * monitoring reads (reference 4.4): the request limits in force and whether the process shares its
 * state with others through Redis. Bitrix names the limits after its own config keys; here each
 * comes from the variable that sets it (PUSH_MAX_BODY_BYTES, PUSH_MAX_CONN_PER_CHANNEL,
 * PUSH_MAX_REQUEST_MESSAGES, PUSH_MAX_CHANNELS).
 */
export interface BitrixStatFields {
  readonly limits: {
    readonly maxPayload: number;
    readonly maxConnPerChannel: number;
    readonly maxMessagesPerRequest: number;
    readonly maxChannelsPerRequest: number;
  };
  /** True when the backend is Redis (every process sees every other's messages and presence). */
  readonly clusterMode: boolean;
}

export function bitrixStatFields(config: Config, backendKind: 'redis' | 'memory'): BitrixStatFields {
  return {
    limits: {
      maxPayload: config.maxBodyBytes,
      maxConnPerChannel: config.maxConnPerChannel,
      maxMessagesPerRequest: config.maxRequestMessages,
      maxChannelsPerRequest: config.maxChannels,
    },
    clusterMode: backendKind === 'redis',
  };
}
