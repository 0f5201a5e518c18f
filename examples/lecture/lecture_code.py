"""The lecture's code, with `tf.keras.` replaced by `cnnlab.` and the Keras imports dropped.

Run: python examples/lecture/lecture_code.py  (EPOCHS=2 for a quick look)
"""
import os

import matplotlib
matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

import cnnlab


# Define CNN model
def create_model():
    model = cnnlab.models.Sequential()
    model.add(cnnlab.layers.Conv2D(32, (3, 3),
        input_shape=(28,28,1), activation='relu'))
    model.add(cnnlab.layers.MaxPooling2D(pool_size=(2, 2)))
    model.add(cnnlab.layers.Conv2D(64, (3, 3), activation='relu'))
    model.add(cnnlab.layers.MaxPooling2D(pool_size=(2, 2),
        padding='same'))
    model.add(cnnlab.layers.Flatten())
    model.add(cnnlab.layers.Dense(64,activation = 'relu'))
    model.add(cnnlab.layers.Dense(10,activation = 'softmax'))
    return model


# Read Data
(x_train, y_train), (x_test, y_test) = \
    cnnlab.datasets.mnist.load_data()
x_train = np.expand_dims(x_train, -1)/255
x_test = np.expand_dims(x_test, -1)/255

# Convert y to one-hot
y_train = cnnlab.utils.to_categorical(y_train, 10)
y_test = cnnlab.utils.to_categorical(y_test, 10)

model = create_model()
model.summary() # Prints model structure

model.compile(loss="categorical_crossentropy",
              optimizer="adam", metrics=["accuracy"])

# Fit model and store results in history object
history = model.fit(x_train, y_train, batch_size=128, epochs=int(os.environ.get("EPOCHS", 10)),
                    validation_data=(x_test, y_test))

# Plot loss and accuracy during training
fig, ax = plt.subplots()
ax.plot(history.history['accuracy'],label = 'train')
ax.plot(history.history['val_accuracy'],label = 'test')
ax.set_title('Accuracy')
ax.legend(loc='lower right')

fig, ax = plt.subplots()
ax.plot(history.history['loss'],label = 'train')
ax.plot(history.history['val_loss'],label = 'test')
ax.set_title('Loss')
ax.legend(loc='upper right')
