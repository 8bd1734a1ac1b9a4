#!/usr/bin/env python3
"""Local SMTP sink for `make run`: accepts mail on 127.0.0.1:PORT and keeps each message as an
.eml file in DIR, so a person trying Vigil locally can read verification and invitation emails."""
import os
import sys
import time

from aiosmtpd.controller import Controller


class Keep:
    def __init__(self, folder):
        self.folder = folder

    async def handle_DATA(self, server, session, envelope):
        name = time.strftime("%Y%m%d-%H%M%S") + f"-{time.time_ns() % 1_000_000:06d}.eml"
        with open(os.path.join(self.folder, name), "wb") as f:
            f.write(envelope.original_content)
        return "250 kept"


def main():
    port, folder = int(sys.argv[1]), sys.argv[2]
    os.makedirs(folder, exist_ok=True)
    controller = Controller(Keep(folder), hostname="127.0.0.1", port=port)
    controller.start()
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        pass
    finally:
        controller.stop()


if __name__ == "__main__":
    main()
