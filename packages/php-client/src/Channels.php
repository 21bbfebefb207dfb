<?php

declare(strict_types=1);

namespace PushServer;

/**
 * Channel ids and their subscriber signatures (the Bitrix scheme: lowercase hex HMAC of the id
 * with the shared `signature_key`, wire form "<id>.<signature>").
 */
final class Channels
{
    public function __construct(
        #[\SensitiveParameter] private readonly string $signatureKey,
        private readonly string $algorithm = 'sha1',
    ) {
        if (strlen($signatureKey) < 16) {
            throw new \InvalidArgumentException('signature key must be at least 16 characters');
        }
        if (!in_array($algorithm, ['sha1', 'sha256', 'sha512', 'md5'], true)) {
            throw new \InvalidArgumentException('algorithm must be sha1, sha256, sha512 or md5');
        }
    }

    /** A fresh id: 32 lowercase hex characters = 128 random bits. */
    public static function mint(): string
    {
        return bin2hex(random_bytes(16));
    }

    public static function isValid(string $id): bool
    {
        return preg_match('/^[a-f0-9]{32}$/', $id) === 1;
    }

    /** "<id>.<signature>": what subscribers put in CHANNEL_ID. */
    public function sign(string $id): string
    {
        if (!self::isValid($id)) {
            throw new \InvalidArgumentException('channel ids are 32 lowercase hex characters');
        }
        return $id . '.' . hash_hmac($this->algorithm, $id, $this->signatureKey);
    }
}
