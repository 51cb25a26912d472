# Shared by the bash and zsh widgets (`nl2cmd init` writes it into both): ask nl2cmd ($1) for the
# command for the request $2.  Status 0: __nl2cmd_out is the one-line command and __nl2cmd_err any
# notes (danger warnings) to show with it.  Status 1: __nl2cmd_err is the message to show.  The
# caller declares both variables local (bash and zsh scope variables dynamically).
__nl2cmd_ask() {
  \builtin local __nl2cmd_all __nl2cmd_rest __nl2cmd_code
  # One subshell captures stderr, then \037 + exit status + \037 + stdout.  The CLI strips
  # control characters from what it prints, so \037 is a safe separator; we split from the end.
  # The request is one argv element (never eval'ed); stdin is /dev/null.
  __nl2cmd_all=$(
    { __nl2cmd_out=$(\command "$1" suggest -- "$2" </dev/null); __nl2cmd_code=$?; } 2>&1
    \builtin printf '\037%s\037%s' "$__nl2cmd_code" "$__nl2cmd_out"
  )
  __nl2cmd_out=${__nl2cmd_all##*$'\037'}
  __nl2cmd_rest=${__nl2cmd_all%$'\037'*}
  __nl2cmd_code=${__nl2cmd_rest##*$'\037'}
  __nl2cmd_err=${__nl2cmd_rest%$'\037'*}
  while [[ $__nl2cmd_err == *$'\n' ]]; do
    __nl2cmd_err=${__nl2cmd_err%$'\n'}
  done

  if [[ $__nl2cmd_code != 0 ]]; then
    if [[ -z $__nl2cmd_err ]]; then
      if [[ $__nl2cmd_code == 130 ]]; then
        __nl2cmd_err="nl2cmd: cancelled"
      else
        __nl2cmd_err="nl2cmd: error: nl2cmd failed (exit status $__nl2cmd_code)"
      fi
    fi
    \builtin return 1
  fi
  if [[ -z ${__nl2cmd_out//[[:space:]]/} || $__nl2cmd_out == *$'\n'* ]]; then
    __nl2cmd_err="nl2cmd: error: no usable suggestion (expected one line of output)"
    \builtin return 1
  fi
  \builtin return 0
}
