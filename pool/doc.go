// Package pool hands out byte buffers in power-of-two size classes, from
// 64 B to [MaxPooled], each class backed by its own [sync.Pool], so reading
// and writing messages does not allocate once a connection is warm.
//
// A buffer is a *[]byte: storing the pointer keeps sync.Pool from allocating
// a slice header on every Put. Every [Get] should be paired with one [Put];
// after Put the buffer belongs to the pool and must not be touched, not even
// through another slice of it. Buffers are not zeroed: a buffer from Get may
// hold a previous user's bytes past what the caller writes.
//
// [GetFlateWriter] and [GetFlateReader] lend klauspost/compress flate
// compressors and decompressors the same way, for permessage-deflate.
package pool
