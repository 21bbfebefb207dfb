<?php

declare(strict_types=1);

namespace PushServer;

/**
 * A refusal from the server ("<code>: <reason>", e.g. 4126 = rotate the channel) or a transport
 * failure (code 0, HTTP status 0).
 */
final class PushException extends \RuntimeException
{
    public function __construct(
        string $message,
        public readonly int $httpStatus = 0,
        public readonly int $pushCode = 0,
    ) {
        parent::__construct($message, $pushCode);
    }

    /** True when the server says the channel is past its write window: mint a new one. */
    public function channelExpired(): bool
    {
        return $this->pushCode === 4126;
    }
}
