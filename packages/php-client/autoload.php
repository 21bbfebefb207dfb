<?php

/**
 * Autoloader for use without Composer: `require 'path/to/php-client/autoload.php';`.
 * With Composer, vendor/autoload.php does the same through the PSR-4 entry in composer.json.
 */

declare(strict_types=1);

spl_autoload_register(static function (string $class): void {
    if (str_starts_with($class, 'PushServer\\')) {
        $file = __DIR__ . '/src/' . substr($class, strlen('PushServer\\')) . '.php';
        if (is_file($file)) {
            require $file;
        }
    }
});
