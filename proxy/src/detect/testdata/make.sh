#!/bin/sh
# Regenerates the detect fixtures from real clients: openssl s_client and curl
# talk to a local listener (capture.py) that keeps their first bytes; craft.py
# derives the post-quantum and ECH hellos from the captures.
# Needs openssl, curl and python3. Run from anywhere: sh make.sh
set -eu
cd "$(dirname "$0")"
cap="python3 capture.py"

$cap tls openssl_sni.bin -- openssl s_client -connect '127.0.0.1:{port}' -servername www.example.com
$cap tls openssl_nosni.bin -- openssl s_client -connect '127.0.0.1:{port}' -noservername
$cap tls openssl_ffdhe8192.bin -- openssl s_client -connect '127.0.0.1:{port}' \
    -servername www.example.com -groups ffdhe8192
$cap tls curl_sni.bin -- curl -sk --connect-to 'example.com:443:127.0.0.1:{port}' https://example.com/

$cap http curl_get.txt -- curl -s --connect-to 'example.com:80:127.0.0.1:{port}' http://example.com/
$cap http curl_absolute.txt -- curl -s -x 'http://127.0.0.1:{port}' http://example.com:8080/path
$cap http curl_connect.txt -- curl -s -x 'http://127.0.0.1:{port}' https://example.com/

python3 craft.py pq curl_sni.bin pq_mlkem.bin
python3 craft.py ech openssl_sni.bin ech_outer.bin
