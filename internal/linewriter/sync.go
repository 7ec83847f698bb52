package linewriter

import (
	"errors"
	"syscall"
)

// unsyncable reports whether err only says that the output is not a file
// that can be synced (fsync of a pipe, a socket or a terminal).
func unsyncable(err error) bool {
	return errors.Is(err, syscall.EINVAL) || errors.Is(err, syscall.ENOTSUP) || errors.Is(err, syscall.EBADF)
}
