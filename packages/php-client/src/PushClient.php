<?php

declare(strict_types=1);

namespace PushServer;

/**
 * Talks to a push server publisher: signed single and batch publishes, online status, and
 * server-side channel minting. No dependencies beyond PHP 8.1 (HTTP through PHP streams).
 *
 *   $push = new PushClient('http://push.internal:9010', Signer::fromKeyFile('/etc/portal/push-key.json'));
 *   $push->publish([$channelId], ['module_id' => 'im', 'command' => 'message', 'params' => [...]], 86400);
 */
final class PushClient
{
    /**
     * @param string $baseUrl  scheme://host[:port] of the publisher (or of nginx in front of it)
     * @param string $path     publish path; "/bitrix/pub/" matches what Bitrix portals use
     */
    public function __construct(
        private readonly string $baseUrl,
        private readonly Signer $signer,
        private readonly string $path = '/bitrix/pub/',
        private readonly float $timeoutSeconds = 5.0,
    ) {
        if (!preg_match('#^https?://[^/]+$#', rtrim($baseUrl, '/'))) {
            throw new \InvalidArgumentException('base URL must be http(s)://host[:port]');
        }
    }

    /**
     * Publishes one message to up to 100 channels. $message is encoded as JSON (or sent as-is when
     * it is a string). Throws PushException on refusal; `channelExpired()` means: rotate.
     *
     * @param list<string> $channels
     * @param array<mixed>|string $message
     */
    public function publish(array $channels, array|string $message, int $expirySeconds = 0, ?string $type = null): void
    {
        $headers = [];
        if ($expirySeconds > 0) {
            $headers['Message-Expiry'] = (string) $expirySeconds;
        }
        if ($type !== null) {
            $headers['Message-Type'] = $type;
        }
        $body = is_string($message) ? $message : self::json($message);
        $this->publishRequest($this->path . '?CHANNEL_ID=' . $this->channelList($channels), $body, $headers);
    }

    /**
     * Publishes several messages in one request (one signature for all of them).
     *
     * @param list<array{channels: list<string>, body: array<mixed>, expiry?: int, type?: string}> $messages
     */
    public function publishBatch(array $messages): void
    {
        foreach ($messages as $m) {
            $this->channelList($m['channels']);
        }
        $this->publishRequest(rtrim($this->path, '/') . '/batch', self::json(['messages' => $messages]));
    }

    /** Attempts of one publish when its outcome is unknown (no answer in time, 504 4134) or it was not carried out (503). */
    private const PUBLISH_ATTEMPTS = 4;

    /**
     * Sends a publish with an identity (X-Push-Request-Id, and the signature's nonce) and resends
     * it unchanged, signature included, while its outcome is unknown or it was not carried out:
     * the server carries one identity out at most once and answers a resent one with the original
     * outcome, so a retry never stores a message twice (docs/reliability.md).
     *
     * @param array<string, string> $headers
     */
    private function publishRequest(string $target, string $body, array $headers = []): void
    {
        $headers['X-Push-Request-Id'] = bin2hex(random_bytes(12));
        $signed = $headers + $this->signer->headers('POST', $target, $body);
        for ($attempt = 1; ; $attempt++) {
            try {
                $this->send('POST', $target, $body, $signed);
                return;
            } catch (PushException $e) {
                // No answer (status 0), outcome unknown (504), or not carried out (503).
                $retry = in_array($e->httpStatus, [0, 503, 504], true);
                if (!$retry || $attempt >= self::PUBLISH_ATTEMPTS) {
                    throw $e;
                }
                usleep(200000 * $attempt);
            }
        }
    }

    /**
     * The subset of $channels that have a subscriber right now.
     *
     * @param list<string> $channels
     * @return list<string>
     */
    public function onlineChannels(array $channels): array
    {
        $reply = $this->request('GET', $this->path . '?CHANNEL_ID=' . $this->channelList($channels), '');
        $data = json_decode($reply, true);
        if (!is_array($data) || !isset($data['infos']) || !is_array($data['infos'])) {
            throw new PushException('unexpected online status reply');
        }
        return array_values(array_map(static fn (array $i): string => (string) $i['channel'], $data['infos']));
    }

    /**
     * Mints channels on the server, which records their creation: the 12 h write / 24 h read
     * lifecycle starts now. Returns [{id, signed, created, writableUntil, readableUntil}, ...].
     *
     * @return list<array{id: string, signed: string, created: int, writableUntil: int, readableUntil: int}>
     */
    public function mintChannels(int $count = 1): array
    {
        $data = json_decode($this->request('POST', '/channels?count=' . $count, ''), true);
        if (!is_array($data) || !isset($data['channels']) || !is_array($data['channels'])) {
            throw new PushException('unexpected mint reply');
        }
        return $data['channels'];
    }

    /** @param list<string> $channels */
    private function channelList(array $channels): string
    {
        if ($channels === [] || count($channels) > 100) {
            throw new \InvalidArgumentException('between 1 and 100 channels per request');
        }
        foreach ($channels as $c) {
            if (!Channels::isValid($c)) {
                throw new \InvalidArgumentException('channel ids are 32 lowercase hex characters, got ' . json_encode($c));
            }
        }
        return implode('/', $channels);
    }

    private static function json(array $value): string
    {
        return json_encode($value, JSON_UNESCAPED_UNICODE | JSON_UNESCAPED_SLASHES | JSON_THROW_ON_ERROR);
    }

    /** @param array<string, string> $extraHeaders */
    private function request(string $method, string $target, string $body, array $extraHeaders = []): string
    {
        return $this->send($method, $target, $body, $extraHeaders + $this->signer->headers($method, $target, $body));
    }

    /** @param array<string, string> $headers every header, signature included */
    private function send(string $method, string $target, string $body, array $headers): string
    {
        $lines = ['Connection: close', 'Content-Type: application/json'];
        foreach ($headers as $name => $value) {
            $lines[] = "$name: $value";
        }
        $options = ['method' => $method, 'header' => $lines, 'ignore_errors' => true, 'timeout' => $this->timeoutSeconds, 'protocol_version' => 1.1];
        if ($method !== 'GET') {
            $options['content'] = $body;
        }
        $context = stream_context_create(['http' => $options]);
        $reply = @file_get_contents(rtrim($this->baseUrl, '/') . $target, false, $context);
        $statusLine = isset($http_response_header[0]) ? $http_response_header[0] : '';
        if ($reply === false || !preg_match('#^HTTP/\S+\s+(\d{3})#', $statusLine, $m)) {
            $error = error_get_last();
            throw new PushException('cannot reach push server: ' . ($error['message'] ?? 'no response'));
        }
        $status = (int) $m[1];
        if ($status < 200 || $status >= 300) {
            $code = preg_match('/^(\d{4}): /', $reply, $c) ? (int) $c[1] : 0;
            throw new PushException(trim($reply) !== '' ? trim($reply) : "HTTP $status", $status, $code);
        }
        return $reply;
    }
}
