// Package open turns a store URL, as written in a drive's config or on the
// command line, into a remote.Store:
//
//	/path/to/dir, ./dir, file:///path/to/dir   a local directory (remote/dirstore)
//	http(s)://[TOKEN@]host:port[/path]         a node server (remote/node client)
//	s3://bucket[/prefix]?endpoint=host:port&region=R&secure=false
//	                                           an S3 bucket (remote/s3store), with the
//	                                           credentials in AWS_ACCESS_KEY_ID and
//	                                           AWS_SECRET_ACCESS_KEY
//
// A URL it cannot read gets a one-line error that lists the accepted forms.
// Tokens never appear in errors.
package open
