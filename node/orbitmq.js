// The package's entry: the generated binding (index.js) with the two things napi-rs does not
// do the Node way. Everything else is the binding itself.
// 1. An argument of the wrong type (napi's own conversion, before any Rust code runs) fails
//    with err.code BAD_REQUEST, like every other bad argument (napi's code stays in
//    err.napiCode), instead of napi's InvalidArg, ObjectExpected, ...
// 2. A method that returns a Promise rejects instead of throwing such an error synchronously.
'use strict'

const native = require('./index.js')

const NAPI_CONVERSION = new Set(['InvalidArg', 'ObjectExpected', 'StringExpected', 'NameExpected',
  'FunctionExpected', 'NumberExpected', 'BooleanExpected', 'ArrayExpected', 'BigintExpected'])

function badRequest(e) {
  if (e instanceof Error && NAPI_CONVERSION.has(e.code)) {
    e.napiCode = e.code
    e.code = 'BAD_REQUEST'
  }
  return e
}

// The methods that return a Promise, per class (index.d.ts).
const ASYNC = {
  Producer: ['start', 'send', 'sendBatch', 'recall', 'shutdown'],
  Transaction: ['send', 'commit', 'rollback'],
  PushConsumer: ['start', 'subscribe', 'shutdown'],
  SimpleConsumer: ['start', 'subscribe', 'receive', 'ack', 'ackBatch', 'changeInvisibleDuration', 'shutdown'],
  PullConsumer: ['start', 'subscribe', 'assign', 'queues', 'poll', 'commit', 'seekToBeginning', 'seekToEnd',
    'seekToTimestamp', 'shutdown'],
  Admin: ['createTopic', 'updateTopic', 'deleteTopic', 'listTopics', 'topic', 'topicStatus', 'topicRoute',
    'queryMessageById', 'queryMessageByKey', 'queryMessageByOffset', 'createGroup',
    'listGroups', 'deleteGroup', 'consumerProgress', 'resetOffset', 'resendMessage', 'groupMembers',
    'brokerStats'],
}
const SYNC = {
  Producer: ['beginTransaction'],
  PushConsumer: ['unsubscribe'],
  SimpleConsumer: ['unsubscribe'],
  PullConsumer: ['assignment', 'position', 'seek'],
}

for (const [cls, methods] of Object.entries(ASYNC)) {
  const proto = native[cls].prototype
  for (const name of methods) {
    const call = proto[name]
    proto[name] = function (...args) {
      try {
        return call.apply(this, args)
      } catch (e) {
        return Promise.reject(badRequest(e))
      }
    }
  }
}
for (const [cls, methods] of Object.entries(SYNC)) {
  const proto = native[cls].prototype
  for (const name of methods) {
    const call = proto[name]
    proto[name] = function (...args) {
      try {
        return call.apply(this, args)
      } catch (e) {
        throw badRequest(e)
      }
    }
  }
}

/** The class `cls` with a constructor whose argument errors are BAD_REQUEST. */
function constructed(cls) {
  const Native = native[cls]
  const wrapped = {
    [cls]: class extends Native {
      constructor(options) {
        try {
          super(options)
        } catch (e) {
          throw badRequest(e)
        }
      }
    },
  }[cls]
  return wrapped
}

function setLogger(...args) {
  try {
    return native.setLogger(...args)
  } catch (e) {
    throw badRequest(e)
  }
}

// One assignment per name: Node's ESM loader finds the named exports of this file by them.
module.exports.Producer = constructed('Producer')
module.exports.PushConsumer = constructed('PushConsumer')
module.exports.SimpleConsumer = constructed('SimpleConsumer')
module.exports.PullConsumer = constructed('PullConsumer')
module.exports.Admin = constructed('Admin')
module.exports.Transaction = native.Transaction
module.exports.MessageView = native.MessageView
module.exports.ConsumeResult = native.ConsumeResult
module.exports.ConsumerModel = native.ConsumerModel
module.exports.TransactionResolution = native.TransactionResolution
module.exports.ErrorCode = native.ErrorCode
module.exports.setLogger = setLogger
